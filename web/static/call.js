// The call review page: transcript lines and timeline marks seek the player,
// the playing line is highlighted, keys control playback, and the comment
// form can take the player's current moment. The page reads without this.
(function () {
  "use strict";
  const player = document.getElementById("player");
  if (!player) return;
  const lines = Array.from(document.querySelectorAll(".transcript li[data-start]"));
  const progress = document.getElementById("progress");
  const timeline = document.getElementById("timeline");
  const rateLabel = document.getElementById("rate");
  const momentField = document.getElementById("comment-at");
  const STEP_SECONDS = 5;
  const RATES = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3];

  function seek(seconds, play) {
    player.currentTime = Math.max(0, seconds);
    if (play) player.play();
  }

  function clock(seconds) {
    const whole = Math.floor(seconds);
    const rest = whole % 60;
    return Math.floor(whole / 60) + ":" + (rest < 10 ? "0" : "") + rest;
  }

  for (const line of lines) {
    line.querySelector(".seek").addEventListener("click", function () {
      seek(parseFloat(line.dataset.start), true);
    });
  }
  for (const link of document.querySelectorAll("a.seek-link, .timeline a.mark")) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      seek(parseFloat(link.dataset.start), true);
    });
  }

  function highlight() {
    const now = player.currentTime;
    for (const line of lines) {
      const next = line.nextElementSibling;
      const end = next && next.dataset.start ? parseFloat(next.dataset.start) : Infinity;
      line.classList.toggle("playing", now >= parseFloat(line.dataset.start) && now < end);
    }
    if (progress && player.duration) {
      progress.style.width = (100 * now / player.duration) + "%";
      timeline.setAttribute("aria-valuenow", Math.round(now));
      timeline.setAttribute("aria-valuemax", Math.round(player.duration));
    }
  }
  player.addEventListener("timeupdate", highlight);
  player.addEventListener("seeked", highlight);

  if (timeline) {
    timeline.addEventListener("click", function (event) {
      if (event.target.closest("a.mark") || !player.duration) return;
      const box = timeline.getBoundingClientRect();
      seek(player.duration * (event.clientX - box.left) / box.width, false);
    });
  }

  function changeRate(step) {
    const index = RATES.indexOf(player.playbackRate);
    const current = index === -1 ? RATES.indexOf(1) : index;
    const next = Math.min(RATES.length - 1, Math.max(0, current + step));
    player.playbackRate = RATES[next];
    if (rateLabel) rateLabel.textContent = RATES[next] + "×";
  }

  const KEYS = {
    " ": function () { if (player.paused) player.play(); else player.pause(); },
    k: function () { KEYS[" "](); },
    ArrowLeft: function () { seek(player.currentTime - STEP_SECONDS, false); },
    j: function () { KEYS.ArrowLeft(); },
    ArrowRight: function () { seek(player.currentTime + STEP_SECONDS, false); },
    l: function () { KEYS.ArrowRight(); },
    "[": function () { changeRate(-1); },
    "]": function () { changeRate(1); },
  };
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target.closest && target.closest("input, textarea, select, audio")) return;
    const action = KEYS[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  const momentButton = document.getElementById("comment-here");
  if (momentButton && momentField) {
    momentButton.addEventListener("click", function () {
      momentField.value = clock(player.currentTime);
    });
  }

  // A link to a moment (?t=75 or #t=75) starts the player there.
  const found = /[?#&]t=(\d+(?:\.\d+)?)/.exec(window.location.search + window.location.hash);
  if (found) {
    const start = parseFloat(found[1]);
    const place = function () { player.currentTime = start; highlight(); };
    if (player.readyState >= 1) place(); else player.addEventListener("loadedmetadata", place, { once: true });
  }
})();

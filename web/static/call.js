// Clicking a transcript line seeks the player to that moment.
(function () {
  const player = document.getElementById("player");
  if (!player) return;
  const lines = Array.from(document.querySelectorAll(".transcript li[data-start]"));
  for (const line of lines) {
    line.querySelector(".seek").addEventListener("click", function () {
      player.currentTime = parseFloat(line.dataset.start);
      player.play();
    });
  }
  player.addEventListener("timeupdate", function () {
    for (const line of lines) {
      const start = parseFloat(line.dataset.start);
      line.classList.toggle("playing", player.currentTime >= start &&
        (line.nextElementSibling === null ||
         player.currentTime < parseFloat(line.nextElementSibling.dataset.start)));
    }
  });
})();

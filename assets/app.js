// Live countdowns: every <time data-expires> shows the time left, once a second. Without
// JavaScript the server's "in 12 min" and the absolute time stay.
(function () {
  function left(ms) {
    if (ms <= 0) return "expired";
    var s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    if (h === 0 && m === 0) return "in " + s + " s";
    if (h === 0) return "in " + m + " min " + (s % 60) + " s";
    return "in " + h + " h " + m + " min";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-expires]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("data-expires"));
      if (!isNaN(at)) el.textContent = left(at - now);
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
  setInterval(tick, 1000);
})();

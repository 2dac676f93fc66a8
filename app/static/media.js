// Warden review media strip (app/media_strip.py): "[" / "]" (or the arrow keys inside the
// strip) select the previous / next image or frame, "V" reveals the selected one, a click
// selects one. Keys are ignored while a text field has focus. The selection goes to the hidden
// #wd-medium-pos box, which the reveal button (#wd-reveal-medium) sends to the server.
(function () {
  if (window.__wardenMedia) return;
  window.__wardenMedia = true;
  function figures() {
    return Array.from(document.querySelectorAll("#wd-media-strip .wd-medium"));
  }
  function current() {
    const f = figures();
    return Math.max(0, f.findIndex((el) => el.classList.contains("wd-medium-current")));
  }
  function select(i) {
    const f = figures();
    if (!f.length) return;
    i = (i + f.length) % f.length;
    f.forEach((el, k) => el.classList.toggle("wd-medium-current", k === i));
    f[i].focus();
    const box = document.querySelector("#wd-medium-pos textarea, #wd-medium-pos input");
    if (box) {
      box.value = f[i].dataset.position;
      box.dispatchEvent(new Event("input", { bubbles: true }));
    }
  }
  function typing(el) {
    if (!el) return false;
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && !["checkbox", "radio", "button"].includes(el.type);
  }
  document.addEventListener("keydown", function (e) {
    if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey || !figures().length) return;
    const inStrip = e.target && e.target.closest && e.target.closest("#wd-media-strip");
    let step = 0;
    if (e.key === "]" || (inStrip && e.key === "ArrowRight")) step = 1;
    else if (e.key === "[" || (inStrip && e.key === "ArrowLeft")) step = -1;
    if (step) {
      e.preventDefault();
      e.stopPropagation();
      select(current() + step);
      return;
    }
    if (e.key === "v" || e.key === "V") {
      e.preventDefault();
      e.stopPropagation();
      select(current());
      const el = document.getElementById("wd-reveal-medium");
      const btn = el && (el.tagName === "BUTTON" ? el : el.querySelector("button"));
      if (btn) btn.click();
    }
  }, true);
  document.addEventListener("click", function (e) {
    const fig = e.target && e.target.closest && e.target.closest("#wd-media-strip .wd-medium");
    if (fig) select(figures().indexOf(fig));
  });
})();

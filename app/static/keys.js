// Warden review keyboard: one capture-phase listener on the document.
// Digits toggle categories (1-9, 0 = 10th; Shift+digit or "-" = 11th and on), Enter submits,
// A accepts the model's flags, S skips, E escalates, R reveals, U undoes, N goes to the note,
// D toggles the category definitions, ? toggles the key help, Esc leaves a text field.
// A click on an empty state's "Open the Queue tab" link selects the Queue tab.
// Keys are ignored while a text field has focus, and when the Review tab is not showing.
(function () {
  if (window.__wardenKeys) return;
  window.__wardenKeys = true;
  const BUTTONS = {
    Enter: "wd-submit", a: "wd-accept", s: "wd-skip", e: "wd-escalate", r: "wd-reveal",
    u: "wd-undo",
  };
  function isTextField(el) {
    if (!el) return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    const type = (el.type || "text").toLowerCase();
    return !["checkbox", "radio", "button", "submit", "reset", "range", "file"].includes(type);
  }
  function stop(e) { e.preventDefault(); e.stopPropagation(); }
  function clickId(id) {
    const el = document.getElementById(id);
    const btn = el && (el.tagName === "BUTTON" ? el : el.querySelector("button"));
    if (btn && !btn.disabled) btn.click();
  }
  document.addEventListener("keydown", function (e) {
    const target = e.target;
    if (isTextField(target)) {
      if (e.key === "Escape") { target.blur(); stop(e); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const submit = document.getElementById("wd-submit");
    if (!submit || submit.offsetParent === null) return;
    if (e.key === "?") { document.body.classList.toggle("wd-help"); stop(e); return; }
    if (e.key === "Escape") {
      document.body.classList.remove("wd-help", "wd-defs");
      return;
    }
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (key === "d") { document.body.classList.toggle("wd-defs"); stop(e); return; }
    if (key === "n") {
      const note = document.querySelector("#wd-note textarea, #wd-note input");
      if (note) { stop(e); note.focus(); }
      return;
    }
    let index = -1;
    const m = /^Digit([0-9])$/.exec(e.code || "");
    if (m) {
      const d = Number(m[1]);
      index = (d === 0 ? 9 : d - 1) + (e.shiftKey ? 10 : 0);
    } else if (e.key === "-") {
      index = 10;
    }
    if (index >= 0) {
      const boxes = document.querySelectorAll("#wd-cats input[type=checkbox]");
      if (boxes[index]) boxes[index].click();
      stop(e);
      return;
    }
    const id = BUTTONS[key];
    if (id) { stop(e); clickId(id); }
  }, true);
  document.addEventListener("click", function (e) {
    const link = e.target && e.target.closest && e.target.closest(".wd-goto-queue");
    if (!link) return;
    e.preventDefault();
    // By id, not by its text: the tab's name is in the user's language.
    const tab = document.getElementById("tab-queue-button");
    if (tab) tab.click();
  });
})();

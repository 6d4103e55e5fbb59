// loyaltyd dashboard: the only script. Disables a form's buttons once it is submitted
// (the server also posts a form at most once: each carries its own idempotency key).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.submitted === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.submitted = "1";
  setTimeout(() => {
    for (const b of form.querySelectorAll("button")) b.disabled = true;
  }, 0);
});

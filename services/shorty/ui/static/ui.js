// Shorty's web app: what a page does with JavaScript on. Every page works without it.
"use strict";

// Copy buttons: data-copy holds the text; the status beside the button says it worked.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const status = button.parentElement.querySelector(".copied");
  try {
    await navigator.clipboard.writeText(button.dataset.copy);
    if (status) status.textContent = "Copied";
  } catch (error) {
    if (status) status.textContent = "Copy failed: select the address and copy it";
  }
  if (status) setTimeout(() => { status.textContent = ""; }, 4000);
});

// The /voice-cloning page. Everything from the server or the user goes into the page as text
// (textContent, text nodes, attribute values), never as HTML.
(() => {
  "use strict";

  const STAGES = {
    queued: "Waiting for a worker",
    running: "Starting",
    downloading: "Downloading the clip",
    decoding: "Reading the recording",
    cleaning: "Cleaning up the audio",
    transcribing: "Transcribing",
    choosing_reference: "Choosing the reference",
    storing: "Saving the voice",
    done: "Done",
  };
  const FINISHED = new Set(["succeeded", "failed"]);
  const POLL_MS = 1500;
  const csrfToken = document.querySelector("input[name=csrfmiddlewaretoken]").value;

  // --- Messages and errors -----------------------------------------------------------------

  class UiError extends Error {
    constructor(message, param) {
      super(message);
      this.param = param || null;
    }
  }

  function describeStatus(response) {
    if (response.redirected) return "You are logged out: reload the page and log in again.";
    if (response.status === 403) {
      return "The server refused the request (403): reload the page and try again.";
    }
    if (response.status === 413) return "The file is too large.";
    return "The server answered " + response.status + " " + response.statusText + ".";
  }

  // The JSON body of a successful answer; otherwise the server's error message, thrown.
  async function readJson(response) {
    let body = null;
    if ((response.headers.get("Content-Type") || "").includes("application/json")) {
      body = await response.json().catch(() => null);
    }
    if (response.ok && body !== null) return body;
    if (body && body.error && body.error.message) {
      throw new UiError(body.error.message, body.error.param);
    }
    throw new UiError(describeStatus(response));
  }

  function unreachable() {
    throw new UiError("The server could not be reached: check the connection and try again.");
  }

  function send(url, options) {
    const headers = { "X-CSRFToken": csrfToken };
    return fetch(url, { credentials: "same-origin", headers, ...options }).then(readJson, unreachable);
  }

  function setOutcome(element, kind, text) {
    element.className = element.className.replace(/\b(ok|error)\b/g, "").trim();
    if (kind) element.classList.add(kind);
    element.textContent = text;
  }

  function markInvalid(form, param) {
    form.querySelectorAll(".field.invalid").forEach((field) => field.classList.remove("invalid"));
    const input = param ? form.elements.namedItem(param) : null;
    const field = input && input.closest ? input.closest(".field") : null;
    if (field) {
      field.classList.add("invalid");
      input.focus();
    }
  }

  // --- Tabs -------------------------------------------------------------------------------

  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));

  function showTab(name) {
    for (const tab of tabs) {
      const selected = tab.id === "tab-" + name;
      tab.setAttribute("aria-selected", String(selected));
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !selected;
    }
    const url = new URL(location.href);
    url.searchParams.set("tab", name);
    history.replaceState(null, "", url);
  }

  for (const tab of tabs) {
    tab.addEventListener("click", (event) => {
      event.preventDefault();
      showTab(tab.id.replace("tab-", ""));
    });
  }
  document.querySelectorAll("[data-tab-link]").forEach((link) => {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      showTab(link.dataset.tabLink);
    });
  });

  // --- Clone Voice ------------------------------------------------------------------------

  const cloneForm = document.getElementById("clone-form");
  const cloneButton = cloneForm.querySelector("button[type=submit]");
  const cloneStatus = document.getElementById("clone-status");
  const stageText = cloneStatus.querySelector(".stage");
  const percentText = cloneStatus.querySelector(".percent");
  const progressBar = cloneStatus.querySelector("progress");
  const cloneOutcome = cloneStatus.querySelector(".outcome");

  // Only the chosen source's fields are sent: a file picked and then abandoned for a YouTube
  // clip is not uploaded.
  function syncSource() {
    const source = cloneForm.elements.namedItem("source").value;
    cloneForm.querySelectorAll("[data-source]").forEach((block) => {
      const active = block.dataset.source === source;
      block.hidden = !active;
      block.querySelectorAll("input").forEach((input) => {
        input.disabled = !active;
      });
    });
  }
  cloneForm.addEventListener("change", (event) => {
    if (event.target.name === "source") syncSource();
  });
  syncSource(); // the browser may have restored an earlier choice

  function showJob(job, name) {
    cloneStatus.hidden = false;
    // A job just taken by a worker still names its stage "queued".
    let stage = job.status === "queued" ? "queued" : job.stage;
    if (job.status === "running" && stage === "queued") stage = "running";
    stageText.textContent = STAGES[stage] || stage || "Working";
    progressBar.value = job.progress;
    percentText.textContent = job.progress + "%";
    if (job.status === "succeeded") {
      progressBar.value = 100;
      percentText.textContent = "100%";
      setOutcome(cloneOutcome, "ok", "The voice “" + name + "” is ready. ");
      const link = document.createElement("a");
      link.href = "?tab=voices";
      link.textContent = "Open My Voices";
      cloneOutcome.append(link);
    } else if (job.status === "failed") {
      stageText.textContent = "Failed";
      const message = job.error && job.error.message;
      setOutcome(cloneOutcome, "error", message || "The voice could not be made.");
    }
  }

  function finishClone(job) {
    cloneButton.disabled = false;
    if (job && job.status === "succeeded") {
      cloneForm.reset();
      syncSource();
    }
  }

  function follow(job, name) {
    showJob(job, name);
    if (FINISHED.has(job.status)) {
      finishClone(job);
      return;
    }
    let finished = false;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(scheme + "://" + location.host + "/ws/jobs/" + job.id + "/");
    socket.addEventListener("message", (event) => {
      const update = JSON.parse(event.data);
      showJob(update, name);
      if (FINISHED.has(update.status)) {
        finished = true;
        finishClone(update);
      }
    });
    // Closed before the end (a proxy without WebSockets, a restart): ask over HTTP instead.
    socket.addEventListener("close", () => {
      if (!finished) poll(job.id, name);
    });
  }

  async function poll(id, name) {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      let job;
      try {
        job = await send("/voice-cloning/jobs/" + id, { method: "GET" });
      } catch (error) {
        setOutcome(cloneOutcome, "error", error.message);
        finishClone(null);
        return;
      }
      showJob(job, name);
      if (FINISHED.has(job.status)) {
        finishClone(job);
        return;
      }
    }
  }

  cloneForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = cloneForm.elements.namedItem("name").value.trim();
    const uploading = cloneForm.elements.namedItem("source").value === "upload";
    markInvalid(cloneForm, null);
    cloneButton.disabled = true;
    cloneStatus.hidden = false;
    stageText.textContent = uploading ? "Uploading the recording" : "Starting";
    percentText.textContent = "";
    progressBar.removeAttribute("value"); // indeterminate until the job reports
    setOutcome(cloneOutcome, "", "");
    let job;
    try {
      job = await send(cloneForm.getAttribute("action"), {
        method: "POST",
        body: new FormData(cloneForm),
      });
    } catch (error) {
      stageText.textContent = "Not started";
      progressBar.value = 0;
      setOutcome(cloneOutcome, "error", error.message);
      markInvalid(cloneForm, error.param);
      cloneButton.disabled = false;
      return;
    }
    follow(job, name);
  });

  // --- My Voices --------------------------------------------------------------------------

  const voicesMessage = document.getElementById("voices-message");
  const speechVoice = document.getElementById("speech-voice");
  const speechModel = document.getElementById("speech-model");

  function notify(kind, text) {
    voicesMessage.hidden = false;
    setOutcome(voicesMessage, kind, text);
  }

  document.querySelectorAll("[data-delete-url]").forEach((button) => {
    button.addEventListener("click", async () => {
      const name = button.dataset.voiceName;
      if (!window.confirm("Delete the voice “" + name + "”? This cannot be undone.")) return;
      button.disabled = true;
      let deleted;
      try {
        deleted = await send(button.dataset.deleteUrl, { method: "POST" });
      } catch (error) {
        notify("error", error.message);
        button.disabled = false;
        return;
      }
      const card = button.closest(".voice");
      const list = card.parentElement;
      card.querySelectorAll("audio").forEach((audio) => audio.pause());
      card.remove();
      if (!list.children.length) {
        list.remove();
        document.getElementById("own-voices-empty").hidden = false;
      }
      speechVoice.querySelectorAll("option").forEach((option) => {
        if (option.value === deleted.id) option.remove();
      });
      notify("ok", "Deleted the voice “" + name + "”.");
    });
  });

  // Only CSM speaks stored (cloned) voices; tts-1 means CSM only while it is the default engine.
  function modelForVoice() {
    const option = speechVoice.selectedOptions[0];
    if (option && "stored" in option.dataset) speechModel.value = "csm-1b";
  }
  speechVoice.addEventListener("change", modelForVoice);

  document.querySelectorAll("[data-use-voice]").forEach((button) => {
    button.addEventListener("click", () => {
      speechVoice.value = button.dataset.useVoice;
      modelForVoice();
      showTab("generate");
      document.getElementById("speech-input").focus();
    });
  });

  // --- Generate Speech --------------------------------------------------------------------

  const speechForm = document.getElementById("speech-form");
  const speechButton = speechForm.querySelector("button[type=submit]");
  const speechResult = document.getElementById("speech-result");
  const speechOutcome = speechResult.querySelector(".outcome");
  const speechAudio = document.getElementById("speech-audio");
  const download = document.getElementById("speech-download");
  const seedUsed = document.getElementById("speech-seed-used");
  const temperature = document.getElementById("speech-temperature");
  const temperatureValue = document.getElementById("speech-temperature-value");

  temperature.addEventListener("input", () => {
    temperatureValue.value = temperature.value;
  });

  function stopPlayback() {
    speechAudio.pause();
    speechAudio.removeAttribute("src");
    speechAudio.load();
  }

  // The <audio> element says only that it failed; the same URL fetched says why.
  async function explainPlaybackError(url) {
    const controller = new AbortController();
    try {
      const response = await fetch(url, { credentials: "same-origin", signal: controller.signal });
      if (response.ok) {
        controller.abort();
        setOutcome(
          speechOutcome,
          "error",
          "This browser cannot play the chosen format: choose mp3, or use Download."
        );
        return;
      }
      await readJson(response);
    } catch (error) {
      if (error.name !== "AbortError") setOutcome(speechOutcome, "error", error.message);
    }
  }

  speechAudio.addEventListener("playing", () => {
    setOutcome(speechOutcome, "ok", "Playing while the rest is generated.");
  });
  speechAudio.addEventListener("ended", () => {
    const seconds = Number.isFinite(speechAudio.duration) ? speechAudio.duration.toFixed(1) : "?";
    setOutcome(speechOutcome, "ok", "Done: " + seconds + " s of audio.");
  });
  speechAudio.addEventListener("error", () => {
    const url = speechAudio.getAttribute("src");
    if (url) explainPlaybackError(url);
  });

  speechForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    markInvalid(speechForm, null);
    stopPlayback();
    speechButton.disabled = true;
    speechResult.hidden = false;
    download.hidden = true;
    seedUsed.textContent = "";
    setOutcome(speechOutcome, "", "Preparing…");
    let ticket;
    try {
      ticket = await send(speechForm.getAttribute("action"), {
        method: "POST",
        body: new FormData(speechForm),
      });
    } catch (error) {
      setOutcome(speechOutcome, "error", error.message);
      markInvalid(speechForm, error.param);
      speechButton.disabled = false;
      return;
    }
    speechButton.disabled = false;
    setOutcome(speechOutcome, "", "Generating: playback starts with the first audio.");
    // The element streams: it plays the first bytes while the server still makes the rest.
    speechAudio.src = ticket.url;
    download.href = ticket.download_url;
    download.setAttribute("download", ticket.filename);
    download.hidden = false;
    seedUsed.textContent = "Seed " + ticket.seed + ": Download makes the same take again.";
    speechAudio.play().catch((error) => {
      // Autoplay refused (or the source replaced meanwhile): the controls are there.
      if (error.name === "NotAllowedError") setOutcome(speechOutcome, "", "Ready: press play.");
    });
  });
})();

// The page: open an image, paint the hole (painted = fill), complete it through the REST API,
// follow the progress over server-sent events, show and download the result. No build step,
// no other host: plain browser APIs only.
"use strict";

const $ = (id) => document.getElementById(id);
const CHECK_FIELDS = ["weighted_mask", "tune_g"];  // the options shown as check boxes
const OPTION_FIELDS = ["approach", "lam", "lr", "momentum", "beta1", "beta2", "eps", "out_interval", "seed",
  "z_candidates", "blend", "center_scale", "hmc_beta", "hmc_eps", "hmc_l", "hmc_anneal"];
const OVERLAY_COLOR = "#ff2d78";

const state = {
  model: null,
  file: null, name: "image", image: null, width: 0, height: 0,
  mask: document.createElement("canvas"),   // black strokes on transparent, at the image's size
  base: null,                                // a built-in mask as a layer (canvas), or null
  baseType: "", baseSeed: null,
  actions: [], redo: [],                     // strokes {mode, size, points} and {mode: "clear"}
  stroke: null, tool: "brush",
  job: null, events: null,
};
const maskCtx = state.mask.getContext("2d");
const imageCanvas = $("image-canvas"), overlay = $("overlay-canvas");
const imageCtx = imageCanvas.getContext("2d"), overlayCtx = overlay.getContext("2d");

// ---------------------------------------------------------------------------
// Status and the model
// ---------------------------------------------------------------------------
function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = "status" + (kind ? " " + kind : "");
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (_) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

async function loadModel() {
  try {
    const response = await fetch("/api/model");
    if (!response.ok) throw new Error(await errorOf(response));
    const model = state.model = await response.json();
    $("model-info").textContent = `${model.image_size}×${model.image_size} model · ${model.precision} · ` +
      model.device.replace(/^\/device:/, "");
    if (model.knows) $("model-info").textContent += ` · knows ${model.knows}`;
    $("model-info").title = `z_dim ${model.z_dim}, gf_dim ${model.gf_dim}, df_dim ${model.df_dim}, ` +
      `layout ${model.layout}, ${model.channels} channel(s), batch ${model.batch_size}; ${model.checkpoint}`;
    const select = $("mask-type");
    for (const type of model.mask_types) {
      const option = document.createElement("option");
      option.value = type;
      option.textContent = type;
      select.appendChild(option);
    }
    const d = model.defaults;
    $("n_iter").value = d.n_iter;
    $("n_iter").max = model.limits.max_iter;
    for (const name of OPTION_FIELDS) {
      const value = d[name];
      $(name).value = value === null || value === undefined ? "" : value;
      $(name).dataset.default = $(name).value;
    }
    for (const name of CHECK_FIELDS) {
      $(name).checked = d[name];
      $(name).dataset.default = String(d[name]);
    }
    if (model.channels !== 3) {
      $("photo").disabled = true;
      $("photo").parentElement.title = "Whole photos need a colour model";
    }
  } catch (error) {
    $("model-info").textContent = "the server does not answer";
    setStatus(`Cannot reach the server: ${error.message}`, "error");
  }
}

// ---------------------------------------------------------------------------
// Opening an image
// ---------------------------------------------------------------------------
function openFile(file) {
  if (!file) return;
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.onload = () => {
    state.file = file;
    state.name = (file.name || "image").replace(/\.[^.]+$/, "") || "image";
    state.image = image;
    state.width = image.naturalWidth;
    state.height = image.naturalHeight;
    for (const canvas of [imageCanvas, overlay, state.mask]) {
      canvas.width = state.width;
      canvas.height = state.height;
    }
    imageCtx.drawImage(image, 0, 0);
    state.actions = [];
    state.redo = [];
    state.base = null;
    state.baseType = "";
    $("mask-type").value = "";
    $("stage").classList.remove("empty");
    $("drop-hint").hidden = true;
    $("canvas-wrap").hidden = false;
    fitCanvas();
    state.photoSet = false;  // the switch: not yet set by hand for this image (the server decides, and says why)
    describeImage();
    redraw();
    setStatus("Paint over the part to fill, or pick a built-in mask.");
    inspectImage(file);
  };
  image.onerror = () => {
    URL.revokeObjectURL(url);
    setStatus(`${file.name}: not an image this browser can read (PNG or JPEG).`, "error");
  };
  image.src = url;
}

async function inspectImage(file) {
  // The server's decision for this image (a whole photo or an aligned face), shown on the switch.
  if ($("photo").disabled) return;
  const form = new FormData();
  form.append("image", file, file.name || "image.png");
  try {
    const response = await fetch("/api/inspect", {method: "POST", body: form});
    if (!response.ok || state.file !== file || state.photoSet) return;
    const answer = await response.json();
    $("photo").checked = answer.photo;  // shown; a job that is not overturned lets the server decide again
    $("photo").parentElement.title = answer.why;
    describeImage();
  } catch (error) {
    // No decision shown: a job that does not say is decided by the server all the same.
  }
}

function describeImage() {
  if (!state.image) return;
  const size = state.model ? state.model.image_size : null;
  const resized = size && !$("photo").checked && (state.width !== size || state.height !== size);
  $("image-size").textContent = `${state.name} · ${state.width}×${state.height}` +
    (resized ? ` (completed at ${size}×${size})` : "") + ($("photo").checked ? " · whole photo" : "");
}

function fitCanvas() {
  // The canvases keep the image's pixels; CSS scales them to the stage (pixelated when enlarged).
  const stage = $("stage");
  const maxWidth = stage.clientWidth - 2, maxHeight = Math.max(320, Math.min(window.innerHeight * 0.62, 640));
  const scale = Math.min(maxWidth / state.width, maxHeight / state.height);
  const wrap = $("canvas-wrap");
  wrap.style.width = `${Math.round(state.width * scale)}px`;
  wrap.style.height = `${Math.round(state.height * scale)}px`;
  wrap.classList.toggle("pixelated", scale > 1.5);
}

// ---------------------------------------------------------------------------
// The mask: strokes replayed onto the mask canvas; the overlay shows it in colour
// ---------------------------------------------------------------------------
function lastClear() {
  for (let i = state.actions.length - 1; i >= 0; i--) if (state.actions[i].mode === "clear") return i;
  return -1;
}

function drawStroke(ctx, stroke, color, from = 0) {
  ctx.save();
  ctx.globalCompositeOperation = stroke.mode === "erase" ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = color;
  ctx.lineWidth = stroke.size;
  ctx.lineCap = ctx.lineJoin = "round";
  const points = stroke.points;
  if (points.length === 1) {
    ctx.beginPath();
    ctx.arc(points[0][0], points[0][1], stroke.size / 2, 0, Math.PI * 2);
    ctx.fill();
  } else {
    ctx.beginPath();
    const start = Math.max(0, from - 1);
    ctx.moveTo(points[start][0], points[start][1]);
    for (let i = start + 1; i < points.length; i++) ctx.lineTo(points[i][0], points[i][1]);
    ctx.stroke();
  }
  ctx.restore();
}

function redraw() {
  maskCtx.clearRect(0, 0, state.width, state.height);
  const clear = lastClear();
  if (state.base && clear < 0) maskCtx.drawImage(state.base, 0, 0);
  for (const action of state.actions.slice(clear + 1)) drawStroke(maskCtx, action, "#000");
  overlayCtx.clearRect(0, 0, state.width, state.height);
  overlayCtx.drawImage(state.mask, 0, 0);
  overlayCtx.save();
  overlayCtx.globalCompositeOperation = "source-in";
  overlayCtx.fillStyle = OVERLAY_COLOR;
  overlayCtx.fillRect(0, 0, state.width, state.height);
  overlayCtx.restore();
  updateButtons();
}

function painted() {
  // Whether the mask sent is the painted one (strokes after the built-in mask, or no built-in mask).
  return lastClear() >= 0 || state.actions.length > 0 || !state.baseType;
}

function maskIsEmpty() {
  const data = maskCtx.getImageData(0, 0, state.width, state.height).data;
  for (let i = 3; i < data.length; i += 4) if (data[i] >= 128) return false;
  return true;
}

function updateButtons() {
  const hasImage = !!state.image;
  $("undo").disabled = !hasImage || state.actions.length === 0;
  $("redo").disabled = !hasImage || state.redo.length === 0;
  $("clear").disabled = !hasImage || (state.actions.length === 0 && !state.base) || lastClear() === state.actions.length - 1 && state.actions.length > 0;
  const running = !!(state.job && !state.job.finished);
  $("complete").disabled = !hasImage || !state.model || running;
  $("cancel").hidden = !(running && state.job.id);
}

function pointOf(event) {
  const rect = overlay.getBoundingClientRect();
  return [(event.clientX - rect.left) * state.width / rect.width, (event.clientY - rect.top) * state.height / rect.height];
}

function brushPixels() {
  const rect = overlay.getBoundingClientRect();
  return Math.max(1, Number($("brush-size").value) * state.width / rect.width);
}

function moveCursor(event) {
  const cursor = $("cursor"), rect = overlay.getBoundingClientRect();
  const size = Number($("brush-size").value);
  cursor.hidden = false;
  cursor.style.width = cursor.style.height = `${size}px`;
  cursor.style.left = `${event.clientX - rect.left - size / 2}px`;
  cursor.style.top = `${event.clientY - rect.top - size / 2}px`;
  cursor.classList.toggle("erase", state.tool === "eraser");
}

overlay.addEventListener("pointerdown", (event) => {
  if (!state.image || event.button > 0) return;
  event.preventDefault();
  overlay.setPointerCapture(event.pointerId);
  state.stroke = {mode: state.tool === "eraser" ? "erase" : "paint", size: brushPixels(), points: [pointOf(event)]};
  drawStroke(maskCtx, state.stroke, "#000");
  drawStroke(overlayCtx, state.stroke, OVERLAY_COLOR);
  moveCursor(event);
});

overlay.addEventListener("pointermove", (event) => {
  moveCursor(event);
  const stroke = state.stroke;
  if (!stroke) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  const from = stroke.points.length;
  for (const e of (events.length ? events : [event])) stroke.points.push(pointOf(e));
  drawStroke(maskCtx, stroke, "#000", from);
  drawStroke(overlayCtx, stroke, OVERLAY_COLOR, from);
});

function endStroke() {
  if (!state.stroke) return;
  state.actions.push(state.stroke);
  state.redo = [];
  state.stroke = null;
  redraw();
}
overlay.addEventListener("pointerup", endStroke);
overlay.addEventListener("pointercancel", endStroke);
overlay.addEventListener("pointerleave", () => { $("cursor").hidden = true; });

function undo() {
  if (!state.actions.length) return;
  state.redo.push(state.actions.pop());
  redraw();
}
function redo() {
  if (!state.redo.length) return;
  state.actions.push(state.redo.pop());
  redraw();
}
function clearMask() {
  state.actions.push({mode: "clear"});
  state.redo = [];
  redraw();
}
$("undo").addEventListener("click", undo);
$("redo").addEventListener("click", redo);
$("clear").addEventListener("click", clearMask);

function setTool(tool) {
  state.tool = tool;
  for (const [id, name] of [["tool-brush", "brush"], ["tool-eraser", "eraser"]]) {
    $(id).classList.toggle("active", tool === name);
    $(id).setAttribute("aria-checked", String(tool === name));
  }
}
$("tool-brush").addEventListener("click", () => setTool("brush"));
$("tool-eraser").addEventListener("click", () => setTool("eraser"));
$("brush-size").addEventListener("input", () => { $("brush-size-out").textContent = $("brush-size").value; });

document.addEventListener("keydown", (event) => {
  if (event.target.matches("input, select, textarea")) return;
  const key = event.key.toLowerCase();
  if ((event.ctrlKey || event.metaKey) && key === "z") { event.preventDefault(); event.shiftKey ? redo() : undo(); }
  else if ((event.ctrlKey || event.metaKey) && key === "y") { event.preventDefault(); redo(); }
  else if (key === "b") setTool("brush");
  else if (key === "e") setTool("eraser");
  else if (key === "[" || key === "]") {
    const slider = $("brush-size");
    slider.value = Number(slider.value) + (key === "]" ? 4 : -4);
    slider.dispatchEvent(new Event("input"));
  }
});

// A built-in mask: made by the server (masking.make_mask) at the image's size, as a job with it gets it.
$("mask-type").addEventListener("change", async () => {
  const type = $("mask-type").value;
  state.actions = [];
  state.redo = [];
  state.base = null;
  state.baseType = type;
  if (!type || !state.image) { state.baseType = ""; redraw(); return; }
  const seedField = $("seed").value;
  state.baseSeed = seedField === "" ? Math.floor(Math.random() * 2 ** 31) : Number(seedField);
  const query = new URLSearchParams({width: state.width, height: state.height, seed: state.baseSeed});
  if ($("center_scale").value !== "") query.set("center_scale", $("center_scale").value);
  try {
    const response = await fetch(`/api/masks/${type}?${query}`);
    if (!response.ok) throw new Error(await errorOf(response));
    const bitmap = await createImageBitmap(await response.blob());
    const layer = document.createElement("canvas");
    layer.width = state.width;
    layer.height = state.height;
    const ctx = layer.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    const pixels = ctx.getImageData(0, 0, state.width, state.height);
    for (let i = 0; i < pixels.data.length; i += 4) {  // white (keep) -> transparent, black (fill) -> black
      pixels.data[i + 3] = 255 - pixels.data[i];
      pixels.data[i] = pixels.data[i + 1] = pixels.data[i + 2] = 0;
    }
    ctx.putImageData(pixels, 0, 0);
    state.base = layer;
    redraw();
    setStatus(type === "lowres" ? "lowres: every pixel is filled, matching the image's 8× block means."
      : `Built-in mask “${type}”: press Complete, or paint over it.`);
  } catch (error) {
    setStatus(`Built-in mask: ${error.message}`, "error");
  }
});

// ---------------------------------------------------------------------------
// Completing: POST the job, follow its events, show the result
// ---------------------------------------------------------------------------
async function submit() {
  if (!state.image) return;
  const form = new FormData();
  form.append("image", state.file, state.file.name || "image.png");
  const builtin = !painted();
  if (builtin && !(state.baseType === "random" && $("seed").value === "")) {
    form.append("mask_type", state.baseType);
  } else {
    if (maskIsEmpty()) { setStatus("Paint the part to fill first (painted = fill).", "error"); return; }
    const blob = await new Promise((resolve) => state.mask.toBlob(resolve, "image/png"));
    form.append("mask", blob, "mask.png");
  }
  if (state.photoSet) form.append("photo", String($("photo").checked));
  form.append("n_iter", $("n_iter").value);
  for (const name of OPTION_FIELDS) {
    const field = $(name);
    if (field.value !== "" && field.value !== field.dataset.default) form.append(name, field.value);
  }
  for (const name of CHECK_FIELDS) {
    if (String($(name).checked) !== $(name).dataset.default) form.append(name, String($(name).checked));
  }
  state.job = {finished: false};
  updateButtons();
  showInput();
  setStatus($("photo").checked ? "Finding the faces…" : "Sending…");
  let job;
  try {
    const response = await fetch("/api/jobs", {method: "POST", body: form});
    if (response.status !== 202) throw new Error(await errorOf(response));
    job = await response.json();
  } catch (error) {
    state.job = null;
    updateButtons();
    setStatus(error.message, "error");
    return;
  }
  state.job = {id: job.id, finished: false};
  updateButtons();
  showProgress(job);
  follow(job.id);
}
$("complete").addEventListener("click", submit);

async function cancel() {
  // The server ends the job (a waiting one leaves the queue); its event stream then says "cancelled".
  if (!state.job || !state.job.id || state.job.finished) return;
  $("cancel").disabled = true;
  try {
    const response = await fetch(`/api/jobs/${state.job.id}`, {method: "DELETE"});
    if (!response.ok && response.status !== 409) setStatus(`Cancel: ${await errorOf(response)}`, "error");
  } catch (error) {
    setStatus(`Cancel: ${error.message}`, "error");
  } finally {
    $("cancel").disabled = false;
  }
}
$("cancel").addEventListener("click", cancel);

const ENDED = ["done", "failed", "cancelled"];

function follow(id) {
  if (state.events) state.events.close();
  const events = state.events = new EventSource(`/api/jobs/${id}/events`);
  events.onmessage = (message) => {
    const job = JSON.parse(message.data);
    showProgress(job);
    if (ENDED.includes(job.state)) {
      events.close();
      finish(job);
    }
  };
  events.onerror = async () => {
    if (events.readyState !== EventSource.CLOSED) return;  // the browser reconnects by itself
    const response = await fetch(`/api/jobs/${id}`);
    if (response.ok) { const job = await response.json(); showProgress(job); if (ENDED.includes(job.state)) finish(job); }
  };
}

function showProgress(job) {
  $("progress").hidden = false;
  const fraction = job.n_iter ? job.iteration / job.n_iter : 0;
  $("progress-fill").style.width = `${(100 * fraction).toFixed(1)}%`;
  $("progress-iter").textContent = `iteration ${job.iteration} / ${job.n_iter}`;
  $("progress-loss").textContent = job.loss === null || job.loss === undefined ? "" : `loss ${job.loss.toFixed(4)}`;
  if (job.state === "queued") {
    setStatus(job.queue_position ? `Waiting: ${job.queue_position} job(s) ahead.` : "Queued.");
  } else if (job.state === "running") {
    const faces = job.kind === "photo" ? ` · ${job.faces} face(s)` : "";
    const batch = job.batch && job.batch.jobs > 1 ? ` · batched with ${job.batch.jobs - 1} other job(s)` : "";
    setStatus(`Completing (seed ${job.seed}${faces}${batch})…`);
  }
  if (job.frame) {
    $("results").hidden = false;
    $("result-view").src = job.frame;
    $("result-caption").textContent = `Live: the fill at this iteration`;
  }
}

function finish(job) {
  state.job = {id: job.id, finished: true};
  updateButtons();
  if (job.state === "failed") {
    setStatus(`Failed: ${job.error}`, "error");
    return;
  }
  if (job.state === "cancelled") {
    $("result-caption").textContent = `Cancelled at iteration ${job.iteration}`;
    setStatus("Cancelled.");
    return;
  }
  $("results").hidden = false;
  const base = `/api/jobs/${job.id}`;
  $("result-view").src = `${base}/result.png`;
  $("result-caption").textContent = "Result";
  const png = $("download-png"), gif = $("download-gif");
  png.href = `${base}/result.png`;
  png.download = `${state.name}-completed.png`;
  gif.href = `${base}/completion.gif`;
  gif.download = `${state.name}-completion.gif`;
  png.hidden = gif.hidden = false;
  const seconds = job.finished && job.started ? ` in ${(job.finished - job.started).toFixed(1)} s` : "";
  $("result-info").textContent = `${job.width}×${job.height} · ${job.n_iter} iterations${seconds} · final loss ` +
    `${job.loss === null ? "?" : job.loss.toFixed(4)} · seed ${job.seed} (send it again to get the same result)` +
    (job.notes || []).map((note) => `. Note: ${note}.`).join("");
  setStatus("Done. Download the PNG, or the GIF of the fill.", "ok");
  $("results").scrollIntoView({behavior: "smooth", block: "nearest"});
}

function showInput() {
  // The input with its hole in the overlay colour, at most 1024 pixels wide, for the comparison.
  const scale = Math.min(1, 1024 / Math.max(state.width, state.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(state.width * scale));
  canvas.height = Math.max(1, Math.round(state.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = scale < 1;
  ctx.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 0.6;
  ctx.drawImage(overlay, 0, 0, canvas.width, canvas.height);
  canvas.toBlob((blob) => { $("input-view").src = URL.createObjectURL(blob); }, "image/png");
  $("results").hidden = false;
  $("result-view").removeAttribute("src");
  $("result-caption").textContent = "Result";
  $("download-png").hidden = $("download-gif").hidden = true;
  $("result-info").textContent = "";
}

// ---------------------------------------------------------------------------
// Files: the button and drag and drop
// ---------------------------------------------------------------------------
$("file").addEventListener("change", () => openFile($("file").files[0]));
$("photo").addEventListener("change", () => { state.photoSet = true; describeImage(); });
const stage = $("stage");
stage.addEventListener("dragover", (event) => { event.preventDefault(); stage.classList.add("dragging"); });
stage.addEventListener("dragleave", () => stage.classList.remove("dragging"));
stage.addEventListener("drop", (event) => {
  event.preventDefault();
  stage.classList.remove("dragging");
  if (event.dataTransfer.files.length) openFile(event.dataTransfer.files[0]);
});
window.addEventListener("resize", () => { if (state.image) fitCanvas(); });
for (const id of ["input-view", "result-view"]) {  // small faces: blown up with sharp pixels
  $(id).addEventListener("load", () => $(id).classList.toggle("small", $(id).naturalWidth < 256));
}

loadModel().then(updateButtons);

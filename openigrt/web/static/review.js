// OpenIGRT review workstation: plain browser JavaScript, no build step.
// The server (openigrt/web/app.py) renders every layer from the adjusted transform; this file
// only windows, overlays and draws them in canvases, and sends adjustments and decisions.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const AXES = [
  ["vrt_mm", "vrt", "mm"], ["lng_mm", "lng", "mm"], ["lat_mm", "lat", "mm"],
  ["rtn_deg", "rtn", "°"], ["pitch_deg", "pitch", "°"], ["roll_deg", "roll", "°"],
];
const MODES = [["blend", "blend"], ["colour", "colour blend"], ["checkerboard", "checkerboard"],
  ["difference", "difference"], ["flicker", "flicker"], ["reference", "reference only"], ["acquired", "acquired only"]];
const PRESETS = {
  projection: [["auto", 1.0, 0.5], ["narrow", 0.5, 0.55], ["wide", 1.6, 0.5], ["bright", 0.7, 0.75]],
  planes: [["soft tissue", 400, 40], ["bone", 1800, 400], ["wide", 2000, 0], ["lung", 1500, -600]],
};
const CHECKER_TILES = 8;
const FLICKER_MS = 500;
const POLL_MS = 2000;

function api(path) {
  return TOKEN ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(TOKEN)}` : path;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function fmt(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  const s = Number(v).toFixed(digits);
  return (Number(s) > 0 ? "+" : Number(s) < 0 ? "" : "") + (Number(s) === 0 ? (0).toFixed(digits) : s);
}

function parseRendering(buffer) {
  const view = new DataView(buffer);
  const n = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
  const start = 4 + n + ((4 - ((4 + n) % 4)) % 4);
  for (const v of header.views) {
    v.data = {};
    for (const layer of v.layers) v.data[layer.name] = new Float32Array(buffer, start + layer.offset, layer.length);
  }
  return header;
}

class ViewCanvas {
  constructor(panel, key) {
    this.panel = panel;
    this.key = key;
    this.zoom = 1; this.panX = 0; this.panY = 0;
    this.canvas = el("canvas", { id: `canvas-${panel.id}-${key}`, "data-view": key });
    this.title = el("div", { class: "view-title", id: `title-${panel.id}-${key}` });
    this.root = el("div", { class: "view" }, this.title, this.canvas);
    this.offscreen = document.createElement("canvas");
    this.data = null;
    this.installMouse();
  }

  installMouse() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("mousedown", (e) => {
      drag = { x: e.clientX, y: e.clientY, wl: e.button === 2 || e.shiftKey, w: this.panel.wl.w, l: this.panel.wl.l,
        px: this.panX, py: this.panY };
      e.preventDefault();
    });
    window.addEventListener("mouseup", () => { drag = null; });
    window.addEventListener("mousemove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (drag.wl) {
        const scale = this.panel.kind === "planes" ? 4 : 0.004;
        this.panel.setWindow(Math.max(drag.w + dx * scale, 1e-3), drag.l - dy * scale);
      } else {
        this.panX = drag.px + dx; this.panY = drag.py + dy; this.draw();
      }
    });
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (this.panel.kind === "planes" && !e.ctrlKey) { this.panel.scrollSlice(this.key, e.deltaY > 0 ? -1 : 1); return; }
      this.zoomBy(e.deltaY > 0 ? 1 / 1.2 : 1.2);
    }, { passive: false });
  }

  zoomBy(f) { this.zoom = Math.min(Math.max(this.zoom * f, 0.5), 16); this.draw(); }
  resetZoom() { this.zoom = 1; this.panX = 0; this.panY = 0; this.draw(); }

  setData(v) {
    this.data = v;
    this.title.textContent = v.title;
    if (this.canvas.width !== v.cols || this.canvas.height !== v.rows) {
      this.canvas.width = v.cols; this.canvas.height = v.rows;
      this.offscreen.width = v.cols; this.offscreen.height = v.rows;
      const maxW = this.panel.kind === "planes" ? 360 : 512;
      const s = Math.min(1, maxW / v.cols);
      this.canvas.style.width = `${Math.round(v.cols * s)}px`;
      this.canvas.style.height = `${Math.round(v.rows * s)}px`;
    }
    this.draw();
  }

  compose() {
    const v = this.data, p = this.panel;
    const ref = v.data.reference, acq = v.data.acquired;
    const ctx = this.offscreen.getContext("2d", { willReadFrequently: true });
    const img = ctx.createImageData(v.cols, v.rows);
    const out = img.data;
    const lo = p.wl.l - p.wl.w / 2, inv = 255 / p.wl.w;
    const mode = p.mode === "flicker" ? (p.flickerPhase ? "acquired" : "reference") : p.mode;
    const a = p.alpha, tile = Math.max(1, Math.floor(Math.max(v.cols, v.rows) / CHECKER_TILES));
    for (let r = 0, i = 0; r < v.rows; r++) {
      for (let c = 0; c < v.cols; c++, i++) {
        let R = (ref[i] - lo) * inv, A = (acq[i] - lo) * inv;
        R = R < 0 ? 0 : R > 255 ? 255 : R;
        A = A < 0 ? 0 : A > 255 ? 255 : A;
        let red, green, blue;
        if (mode === "blend") { red = green = blue = (1 - a) * R + a * A; }
        else if (mode === "colour") { red = blue = R * (1 - a) * 2 > 255 ? 255 : R * (1 - a) * 2; green = A * a * 2 > 255 ? 255 : A * a * 2; }
        else if (mode === "checkerboard") { red = green = blue = ((Math.floor(r / tile) + Math.floor(c / tile)) % 2 === 0) ? R : A; }
        else if (mode === "difference") { red = green = blue = 128 + (A - R) / 2; }
        else if (mode === "acquired") { red = green = blue = A; }
        else { red = green = blue = R; }
        const o = i * 4;
        out[o] = red; out[o + 1] = green; out[o + 2] = blue; out[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  draw() {
    if (!this.data) return;
    this.compose();
    const ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    const cx = this.canvas.width / 2, cy = this.canvas.height / 2;
    ctx.setTransform(this.zoom, 0, 0, this.zoom, cx - this.zoom * cx + this.panX, cy - this.zoom * cy + this.panY);
    ctx.imageSmoothingEnabled = this.zoom < 2;
    ctx.drawImage(this.offscreen, 0, 0);
    this.drawOverlays(ctx);
  }

  drawOverlays(ctx) {
    const o = this.data.overlays || {}, z = this.zoom;
    ctx.lineWidth = 1.5 / z;
    const cross = (p, size, colour) => {
      if (!p) return;
      ctx.strokeStyle = colour;
      ctx.beginPath();
      ctx.moveTo(p[0] - size / z, p[1]); ctx.lineTo(p[0] + size / z, p[1]);
      ctx.moveTo(p[0], p[1] - size / z); ctx.lineTo(p[0], p[1] + size / z);
      ctx.stroke();
    };
    if (o.field) {
      ctx.strokeStyle = "#ffd24a"; ctx.setLineDash([6 / z, 4 / z]);
      ctx.beginPath();
      o.field.forEach((p, k) => (k ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
      ctx.closePath(); ctx.stroke(); ctx.setLineDash([]);
    }
    for (const c of o.contours || []) {
      ctx.strokeStyle = c.kind === "target" ? "#ff4a4a" : "#4aff7a";
      for (const line of c.lines) {
        ctx.beginPath();
        line.forEach((p, k) => (k ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
        ctx.stroke();
      }
    }
    cross(o.machine_isocenter, 10, "#4ad2ff");
    cross(o.planned_isocenter, 7, "#ff4aff");
    ctx.font = `${11 / z}px sans-serif`;
    for (const m of o.markers || []) {
      cross(m.planned, 5, "#ff4aff");
      if (m.found) {
        ctx.strokeStyle = m.outlier ? "#ff4a4a" : "#4aff7a";
        ctx.beginPath(); ctx.arc(m.found[0], m.found[1], 6 / z, 0, 2 * Math.PI); ctx.stroke();
        ctx.fillStyle = ctx.strokeStyle;
        const res = m.residual_mm === null || m.residual_mm === undefined ? "" : ` ${m.residual_mm.toFixed(2)} mm`;
        ctx.fillText(`${m.name}${res}`, m.found[0] + 8 / z, m.found[1] - 8 / z);
      }
    }
  }
}

class MatchPanel {
  constructor(desc, steps) {
    this.desc = desc;
    this.id = desc.id;
    this.kind = desc.kind;
    this.steps = steps;
    this.delta = Object.fromEntries(AXES.map(([k]) => [k, 0]));
    this.slices = { axial: 0, coronal: 0, sagittal: 0 };
    this.sliceRanges = {};
    this.mode = "blend"; this.alpha = 0.5; this.flickerPhase = false; this.flickerTimer = null;
    const preset = PRESETS[this.kind][0];
    this.wl = { w: preset[1], l: preset[2] };
    this.step = steps.mm[steps.mm.length - 1];
    this.views = {};
    this.matrix = desc.matrix;
    this.inflight = false; this.pending = false; this.renders = 0;
    this.build();
    this.update(desc);
    this.request();
  }

  axes() { return this.desc.correction.map((r) => r.axis); }

  build() {
    const d = this.desc;
    this.root = el("section", { class: "match", id: `match-${this.id}`, tabindex: "0", "data-kind": this.kind,
      "data-renders": "0" });
    this.badge = el("span", { class: "decision", id: `decision-${this.id}` });
    this.root.append(el("div", { class: "match-head" }, el("h2", { text: `${d.title}` }), this.badge,
      el("span", { class: "info", text: `patient position ${d.patient_position || "?"}, ${d.dof} DoF` })));
    this.root.append(el("div", { class: "info", id: `matched-${this.id}`,
      text: `matched: ${d.matched.images.join(", ")} · ROI: ${d.matched.roi} · DoF: ${d.matched.dof}` }));
    this.root.append(el("div", { class: "info", id: `metric-${this.id}`,
      text: `${d.metric_name}: ${d.metric === null ? "—" : d.metric.toFixed(4)} · ${d.iterations} iterations · ` +
        `${d.stop_reason} · ${d.elapsed_s === null ? "" : d.elapsed_s.toFixed(2) + " s"}` }));
    if (d.markers.length) {
      this.root.append(el("div", { class: "info", id: `markers-${this.id}`, text: "markers: " + d.markers.map((m) =>
        `${m.name} residual ${m.residual_mm === null ? "—" : m.residual_mm.toFixed(2) + " mm"}${m.outlier ? " OUTLIER" : ""}`).join(", ") }));
    }
    this.viewBox = el("div", { class: "views" });
    const side = el("div", { class: "side" }, this.buildTable(), this.buildAdjust(), this.buildDecide());
    this.root.append(this.buildControls(), el("div", { class: "body" }, this.viewBox, side));
    this.status = el("div", { class: "status", id: `status-${this.id}` });
    this.root.append(this.status);
    this.root.addEventListener("keydown", (e) => this.onKey(e));
  }

  buildControls() {
    const mode = el("select", { id: `mode-${this.id}`, onchange: (e) => this.setMode(e.target.value) },
      ...MODES.map(([v, t]) => el("option", { value: v, text: t })));
    const alpha = el("input", { type: "range", min: "0", max: "1", step: "0.05", value: "0.5", id: `alpha-${this.id}`,
      oninput: (e) => { this.alpha = Number(e.target.value); this.redraw(); } });
    const wl = el("select", { id: `wl-${this.id}`, onchange: (e) => {
      const p = PRESETS[this.kind].find((x) => x[0] === e.target.value); this.setWindow(p[1], p[2]); } },
    ...PRESETS[this.kind].map(([n, w, l]) => el("option", { value: n, text: `${n} (W ${w} L ${l})` })));
    this.wlLabel = el("span", { id: `wllabel-${this.id}` });
    const zoom = el("span", {}, el("button", { text: "zoom +", id: `zoomin-${this.id}`, onclick: () => this.eachView((v) => v.zoomBy(1.25)) }),
      el("button", { text: "zoom −", onclick: () => this.eachView((v) => v.zoomBy(0.8)) }),
      el("button", { text: "fit", onclick: () => this.eachView((v) => v.resetZoom()) }));
    const row = el("div", { class: "controls" }, el("label", {}, "overlay ", mode), el("label", {}, "reference ↔ acquired ", alpha),
      el("label", {}, "window/level ", wl), this.wlLabel, zoom);
    if (this.kind === "planes") {
      for (const plane of ["axial", "coronal", "sagittal"]) {
        row.append(el("span", {}, `${plane} `,
          el("button", { text: "−", id: `slice-${this.id}-${plane}-minus`, onclick: () => this.scrollSlice(plane, -1) }),
          el("span", { id: `slicelabel-${this.id}-${plane}`, text: "0" }),
          el("button", { text: "+", id: `slice-${this.id}-${plane}-plus`, onclick: () => this.scrollSlice(plane, 1) })));
      }
    }
    return row;
  }

  buildTable() {
    const head = el("tr", {}, ...["axis", "automatic", "adjust", "correction", "tolerance", ""].map((t) => el("th", { text: t })));
    this.tbody = el("tbody");
    this.cells = {};
    for (const r of this.desc.correction) {
      const unit = AXES.find((a) => a[0] === r.axis)[2];
      const input = el("input", { type: "number", step: r.axis.endsWith("_mm") ? "0.1" : "0.05", id: `input-${this.id}-${r.axis}`,
        onchange: (e) => { if (e.target.value.trim() !== "") this.typed(r.axis, Number(e.target.value)); } });
      const cells = {
        auto: el("td", { id: `auto-${this.id}-${r.axis}` }), adj: el("td", { id: `adj-${this.id}-${r.axis}` }),
        value: el("td", { class: "value", id: `corr-${this.id}-${r.axis}` }), input,
        tol: el("td", { id: `tol-${this.id}-${r.axis}` }), flag: el("td", { class: "flag", id: `flag-${this.id}-${r.axis}` }),
      };
      this.cells[r.axis] = cells;
      const name = AXES.find((a) => a[0] === r.axis)[1];
      cells.row = el("tr", { id: `row-${this.id}-${r.axis}` }, el("td", { text: `${name} (${unit})` }), cells.auto, cells.adj,
        cells.value, cells.tol, cells.flag);
      this.tbody.append(cells.row);
    }
    return el("div", {}, el("table", { class: "corr", id: `corr-${this.id}` }, el("thead", {}, head), this.tbody));
  }

  buildAdjust() {
    const box = el("div", { class: "adjust", id: `adjust-${this.id}` });
    const stepSel = el("select", { id: `step-${this.id}`, onchange: (e) => { this.step = Number(e.target.value); } },
      ...this.steps.mm.map((s) => el("option", { value: s, text: `${s} mm`, selected: s === this.step })));
    box.append(el("div", { class: "controls" }, el("label", {}, "arrow-key step ", stepSel),
      el("button", { text: "reset to automatic", id: `reset-${this.id}`, onclick: () => this.reset() })));
    for (const axis of this.axes()) {
      const [, name, unit] = AXES.find((a) => a[0] === axis);
      const steps = unit === "mm" ? this.steps.mm : [this.steps.deg];
      const buttons = [];
      for (const s of steps.slice().reverse()) buttons.push(this.nudgeButton(axis, -s, unit));
      for (const s of steps) buttons.push(this.nudgeButton(axis, s, unit));
      box.append(el("div", { class: "controls" }, el("span", { text: `${name}` }), ...buttons));
    }
    return box;
  }

  nudgeButton(axis, step, unit) {
    return el("button", { class: "nudge", text: `${step > 0 ? "+" : "−"}${Math.abs(step)} ${unit}`,
      id: `nudge-${this.id}-${axis}-${step > 0 ? "p" : "m"}${Math.abs(step)}`, onclick: () => this.nudge(axis, step) });
  }

  buildDecide() {
    this.acceptBtn = el("button", { class: "accept", id: `accept-${this.id}`, text: "accept", onclick: () => this.decide("accepted") });
    this.rejectBtn = el("button", { class: "reject", id: `reject-${this.id}`, text: "reject", onclick: () => this.decide("rejected") });
    this.decidedInfo = el("div", { class: "info", id: `decided-${this.id}` });
    return el("div", {}, el("div", { class: "controls" }, this.acceptBtn, this.rejectBtn), this.decidedInfo);
  }

  eachView(f) { Object.values(this.views).forEach(f); }
  redraw() { this.eachView((v) => v.draw()); }

  setMode(mode) {
    this.mode = mode;
    clearInterval(this.flickerTimer); this.flickerTimer = null;
    if (mode === "flicker") this.flickerTimer = setInterval(() => { this.flickerPhase = !this.flickerPhase; this.redraw(); }, FLICKER_MS);
    this.redraw();
  }

  setWindow(w, l) {
    this.wl = { w, l };
    this.wlLabel.textContent = `W ${Number(w.toPrecision(4))} L ${Number(l.toPrecision(4))}`;
    this.redraw();
  }

  get adjustable() { return this.desc.adjustable && this.desc.decision === "proposed"; }

  nudge(axis, step) {
    if (!this.adjustable) return;
    this.delta[axis] = Math.round((this.delta[axis] + step) * 1e6) / 1e6;
    this.request();
  }

  typed(axis, value) {
    if (!this.adjustable || !Number.isFinite(value)) return;
    const auto = this.desc.correction.find((r) => r.axis === axis).automatic;
    this.delta[axis] = Math.round((value - auto) * 1e6) / 1e6;
    this.request();
  }

  reset() { for (const k of Object.keys(this.delta)) this.delta[k] = 0; this.request(); }

  scrollSlice(plane, by) {
    const range = this.sliceRanges[plane];
    let next = this.slices[plane] + by;
    if (range) next = Math.min(Math.max(next, range[0]), range[1]);
    if (next === this.slices[plane]) return;
    this.slices[plane] = next;
    this.request();
  }

  onKey(e) {
    const keys = { ArrowLeft: ["lat_mm", -1], ArrowRight: ["lat_mm", 1], ArrowUp: ["lng_mm", 1], ArrowDown: ["lng_mm", -1],
      PageUp: ["vrt_mm", 1], PageDown: ["vrt_mm", -1] };
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT" || !keys[e.key]) return;
    const [axis, sign] = keys[e.key];
    if (!this.axes().includes(axis)) return;
    e.preventDefault();
    this.nudge(axis, sign * this.step);
  }

  async request() {
    if (this.inflight) { this.pending = true; return; }
    this.inflight = true;
    this.setButtons();
    try {
      do {
        this.pending = false;
        const body = JSON.stringify({ adjustment: this.delta, slices: this.slices });
        const t0 = performance.now();
        const r = await fetch(api(`api/matches/${this.id}/render`), { method: "POST", body,
          headers: { "Content-Type": "application/json" } });
        if (!r.ok) { this.showError(await errorText(r)); break; }
        const header = parseRendering(await r.arrayBuffer());
        this.apply(header, performance.now() - t0);
      } while (this.pending);
    } catch (err) {
      this.showError(`render failed: ${err}`);
    } finally {
      this.inflight = false;
      this.setButtons();
    }
  }

  apply(header, ms) {
    this.matrix = header.matrix;
    this.root.dataset.matrix = JSON.stringify(header.matrix);
    this.root.dataset.adjustment = JSON.stringify(header.adjustment);
    this.sliceRanges = header.slice_ranges || {};
    for (const row of header.correction) this.updateRow(row);
    for (const v of header.views) {
      if (!this.views[v.key]) { this.views[v.key] = new ViewCanvas(this, v.key); this.viewBox.append(this.views[v.key].root); }
      this.views[v.key].setData(v);
      if (v.slice_index !== null && v.slice_index !== undefined) {
        this.slices[v.key] = v.slice_index;
        const label = document.getElementById(`slicelabel-${this.id}-${v.key}`);
        if (label) label.textContent = `${v.slice_index > 0 ? "+" : ""}${v.slice_index} (${v.slice_offset_mm.toFixed(1)} mm)`;
      }
    }
    if (!this.wlLabel.textContent) this.setWindow(this.wl.w, this.wl.l);
    this.renders += 1;
    this.root.dataset.renders = String(this.renders);
    this.status.className = "status";
    this.status.textContent = `rendered in ${header.render_s.toFixed(3)} s on the server (${Math.round(ms)} ms round trip); ` +
      `reference: ${header.reference_source}`;
  }

  updateRow(row) {
    const c = this.cells[row.axis];
    if (!c) return;
    const unit = row.axis.endsWith("_mm") ? "mm" : "°";
    c.auto.textContent = row.visible ? fmt(row.automatic) : "n/a";
    c.adj.textContent = fmt(row.adjustment);
    c.value.textContent = row.visible ? fmt(row.correction) : "n/a";
    c.value.dataset.value = String(row.correction);
    c.value.replaceChildren(document.createTextNode(row.visible ? fmt(row.correction) : "n/a"));
    if (this.adjustable && row.visible) { c.input.value = row.correction.toFixed(2); c.value.append(" ", c.input); }
    c.tol.textContent = `±${row.tolerance} ${unit}`;
    c.flag.textContent = row.out_of_tolerance ? "out of tolerance" : row.visible ? "" : "not visible in this view";
    c.row.className = row.out_of_tolerance ? "out" : "";
  }

  setButtons() {
    const busy = this.inflight;
    const can = this.adjustable;
    for (const b of this.root.querySelectorAll("button.nudge, button[id^=reset-]")) b.disabled = !can;
    this.acceptBtn.disabled = !can || busy;
    this.rejectBtn.disabled = !can || busy;
    const adjusted = Object.values(this.delta).some((v) => v !== 0);
    this.acceptBtn.textContent = adjusted ? "accept with adjustment" : "accept";
  }

  update(desc) {
    this.desc = desc;
    this.badge.textContent = desc.decision;
    this.badge.className = `decision ${desc.decision}`;
    this.root.dataset.decision = desc.decision;
    if (desc.decision !== "proposed") {
      const adj = desc.adjustment ? " with adjustment " + Object.entries(desc.adjustment).filter(([, v]) => v)
        .map(([k, v]) => `${k.split("_")[0]} ${fmt(v)}`).join(", ") : "";
      this.decidedInfo.textContent = `${desc.decision}${adj} at ${desc.decided_at || "?"} by ${desc.decided_by || "?"}`;
      clearInterval(this.flickerTimer);
    }
    this.setButtons();
  }

  async decide(decision) {
    if (!this.adjustable || this.inflight) return;
    this.acceptBtn.disabled = this.rejectBtn.disabled = true;
    const r = await fetch(api(`api/matches/${this.id}/decision`), { method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ decision, adjustment: this.delta, matrix: this.matrix }) });
    if (!r.ok) { this.showError(await errorText(r)); await refresh(); return; }
    const session = await r.json();
    applySession(session);
  }

  showError(text) { this.status.className = "status error"; this.status.textContent = text; }
}

async function errorText(r) {
  try { const j = await r.json(); return `${r.status}: ${j.error}`; } catch (e) { return `${r.status} ${r.statusText}`; }
}

const panels = {};

function applySession(s) {
  document.getElementById("session-info").textContent =
    `plan ${s.plan_uid} · session ${s.workdir} · ${s.matches.length} match(es) · state of ${s.updated_at}`;
  const root = document.getElementById("matches");
  for (const m of s.matches) {
    if (!panels[m.id]) { panels[m.id] = new MatchPanel(m, s.steps); root.append(panels[m.id].root); }
    else panels[m.id].update(m);
  }
  const banner = document.getElementById("banner");
  if (s.all_decided) {
    banner.hidden = false; banner.className = "banner"; banner.id = "banner";
    banner.textContent = "Every match is decided. A waiting session now goes on to store the accepted ones.";
  }
  document.body.dataset.allDecided = String(s.all_decided);
}

async function refresh() {
  try {
    const r = await fetch(api("api/session"), { cache: "no-store" });
    if (!r.ok) throw new Error(await errorText(r));
    applySession(await r.json());
  } catch (err) {
    const banner = document.getElementById("banner");
    banner.hidden = false; banner.className = "banner error"; banner.textContent = `cannot read the session: ${err.message}`;
  }
}

refresh().then(() => setInterval(refresh, POLL_MS));

// The shared-canvas page: a grid of 16 × 12 cells kept in the instance's `shared`
// channel `canvas`, one schema key per row ("r0" … "r11", each a string of one colour
// letter per cell, "." for none). Painting pushes the changed rows; the others hear
// {"user", "changes"} and repaint them. Two users painting one row at the same moment:
// the last push wins that row (docs/rooms.md, shared channels).
import {connect, joined, params, setStatus} from "./rooms.js";

const COLUMNS = 16;
const ROWS = 12;
const COLOURS = {k: "#222", r: "#d33", g: "#2a2", b: "#36c", y: "#eb0", ".": "transparent"};
const EMPTY = ".".repeat(COLUMNS);

const rows = Array.from({length: ROWS}, () => EMPTY);
const grid = document.querySelector("#grid");
let colour = "k";

const cell = (r, c) => grid.children[r * COLUMNS + c];
function paintRow(r) {
  for (let c = 0; c < COLUMNS; c++) {
    const letter = rows[r][c] in COLOURS ? rows[r][c] : ".";
    cell(r, c).dataset.colour = letter;
    cell(r, c).style.background = COLOURS[letter];
  }
}
// changes: {"r3": "..k.", …}; keys outside the grid are ignored.
function apply(changes) {
  for (const [key, value] of Object.entries(changes)) {
    const r = Number(key.slice(1));
    if (!/^r\d+$/.test(key) || r >= ROWS || typeof value !== "string") continue;
    rows[r] = value.padEnd(COLUMNS, ".").slice(0, COLUMNS);
    paintRow(r);
  }
}

for (const letter of Object.keys(COLOURS)) {
  const swatch = document.createElement("button");
  swatch.type = "button";
  swatch.setAttribute("role", "radio");
  swatch.title = letter === "." ? "eraser" : letter;
  swatch.style.background = letter === "." ? "#fff" : COLOURS[letter];
  swatch.setAttribute("aria-checked", String(letter === colour));
  swatch.addEventListener("click", () => {
    colour = letter;
    for (const s of document.querySelectorAll("#palette button")) s.setAttribute("aria-checked", String(s === swatch));
  });
  document.querySelector("#palette").append(swatch);
}
for (let i = 0; i < ROWS * COLUMNS; i++) {
  const div = document.createElement("div");
  div.dataset.row = Math.floor(i / COLUMNS);
  div.dataset.column = i % COLUMNS;
  grid.append(div);
}
rows.forEach((_, r) => paintRow(r));

try {
  const socket = await connect();
  const canvas = socket.channel("canvas");
  canvas.on("msg", ({user, changes}) => {
    apply(changes);
    document.querySelector("#last").textContent = `${user} painted`;
  });
  const {state} = await joined(canvas);
  apply(state);
  setStatus("joined", `${params.user} in ${params.instance}`);

  // Changed rows wait here and go as one push every 100 ms at most, so a drag stays
  // within the instance's messages_per_second.
  const dirty = new Set();
  let timer = null;
  const flush = () => {
    timer = null;
    const changes = {};
    for (const r of dirty) changes["r" + r] = rows[r];
    dirty.clear();
    canvas.push("push", changes).receive("error", ({reason}) => setStatus("joined", `not painted: ${reason}`));
  };
  const paint = (target) => {
    if (target.dataset.row === undefined) return;
    const r = Number(target.dataset.row);
    const c = Number(target.dataset.column);
    rows[r] = rows[r].slice(0, c) + colour + rows[r].slice(c + 1);
    paintRow(r);
    dirty.add(r);
    timer ??= setTimeout(flush, 100);
  };
  grid.addEventListener("pointerdown", (event) => {
    // A touch captures the pointer in its first cell; released, a drag reaches the others.
    if (event.target.hasPointerCapture(event.pointerId)) event.target.releasePointerCapture(event.pointerId);
    paint(event.target);
  });
  grid.addEventListener("pointerover", (event) => event.buttons === 1 && paint(event.target));
} catch (e) {
  setStatus("error", e.message);
}

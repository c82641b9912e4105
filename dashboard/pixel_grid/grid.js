// Paint grid: a digit painted cell by cell with clicks, taps or the keyboard (no dragging needed).
// Keys: arrows move, Space paints or erases the focused cell (with the brush), Shift+arrow paints
// while moving, Delete/Backspace erases. Letters Streamlit reserves (r, c) are never used.
// The value sent to Python is a string of side*side '0'/'1' characters, row by row.
const grids = new Map(); // frontend key -> {cells, focus}: survives a re-render of the same grid

export default function (component) {
  const { data, key, parentElement, setStateValue } = component;
  const side = data.side;
  let grid = grids.get(key);
  if (!grid || grid.cells.length !== side * side) {
    const start = typeof data.cells === "string" && data.cells.length === side * side ? data.cells : "";
    grid = { cells: Array.from({ length: side * side }, (_, i) => start[i] === "1"), focus: 0, timer: null };
    grids.set(key, grid);
  }
  grid.brush = Math.max(1, Math.min(3, data.brush | 0));

  let root = parentElement.querySelector(".pg-root");
  if (!root) {
    root = document.createElement("div");
    root.className = "pg-root";
    const table = document.createElement("div");
    table.className = "pg-grid";
    table.setAttribute("role", "grid");
    table.setAttribute("aria-label", data.label);
    table.setAttribute("aria-multiselectable", "true"); // painted cells are the selected ones
    table.style.setProperty("--side", side);
    table.style.setProperty("--pg-ink", data.ink);
    table.style.setProperty("--pg-paper", data.paper);
    table.style.setProperty("--pg-focus", data.focus);
    for (let r = 0; r < side; r++) {
      const row = document.createElement("div");
      row.setAttribute("role", "row");
      row.className = "pg-row";
      for (let c = 0; c < side; c++) {
        const cell = document.createElement("div");
        cell.setAttribute("role", "gridcell");
        cell.className = "pg-cell";
        cell.dataset.index = String(r * side + c);
        cell.setAttribute("aria-label", `row ${r + 1}, column ${c + 1}`);
        row.appendChild(cell);
      }
      table.appendChild(row);
    }
    const status = document.createElement("div");
    status.className = "pg-status";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    root.appendChild(table);
    root.appendChild(status);
    parentElement.appendChild(root);

    table.addEventListener("click", (event) => {
      const cell = event.target.closest(".pg-cell");
      if (!cell) return;
      const index = Number(cell.dataset.index);
      moveFocus(index, true);
      stamp(index, !grid.cells[index]);
    });
    table.addEventListener("keydown", (event) => {
      const r = Math.floor(grid.focus / side), c = grid.focus % side;
      const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      if (event.key in moves) {
        const [dr, dc] = moves[event.key];
        const nr = Math.max(0, Math.min(side - 1, r + dr)), nc = Math.max(0, Math.min(side - 1, c + dc));
        moveFocus(nr * side + nc, true);
        if (event.shiftKey) stamp(grid.focus, true);
      } else if (event.key === " " || event.key === "Enter") {
        stamp(grid.focus, !grid.cells[grid.focus]);
      } else if (event.key === "Delete" || event.key === "Backspace") {
        stamp(grid.focus, false);
      } else if (event.key === "Home" || event.key === "End") {
        moveFocus(r * side + (event.key === "Home" ? 0 : side - 1), true);
      } else {
        return; // every other key keeps its usual meaning (Tab leaves the grid)
      }
      event.preventDefault();
      event.stopPropagation();
    });
  }
  const cellsEl = root.querySelectorAll(".pg-cell");
  const status = root.querySelector(".pg-status");

  function moveFocus(index, focusIt) {
    grid.focus = index;
    cellsEl.forEach((el, i) => el.setAttribute("tabindex", i === index ? "0" : "-1"));
    if (focusIt) cellsEl[index].focus();
  }

  function stamp(index, ink) {
    const r0 = Math.floor(index / side), c0 = index % side;
    for (let r = r0; r < Math.min(side, r0 + grid.brush); r++)
      for (let c = c0; c < Math.min(side, c0 + grid.brush); c++) grid.cells[r * side + c] = ink;
    show();
    clearTimeout(grid.timer); // a burst of clicks or keys sends one value, not one per cell
    grid.timer = setTimeout(() => setStateValue("cells", grid.cells.map((x) => (x ? "1" : "0")).join("")), 350);
  }

  function show() {
    let painted = 0;
    cellsEl.forEach((el, i) => {
      const on = grid.cells[i];
      painted += on ? 1 : 0;
      el.classList.toggle("pg-on", on);
      el.setAttribute("aria-selected", on ? "true" : "false");
    });
    status.textContent = `${painted} of ${side * side} cells painted`;
  }

  moveFocus(grid.focus, false);
  show();
}

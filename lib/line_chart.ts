/**
 * Line charts as PNG (the loss curve of a training run): axes with a few
 * tick labels, a title, axis labels, one line per series and a legend in
 * the corner of the plot that the lines leave most free, drawn with the
 * built-in bitmap font.
 *
 * @module
 */
import { drawText, GLYPH_HEIGHT, textWidth } from "./bitmap_font.ts";
import { encodeImage, type RasterImage, writeFileAtomic } from "./image_io.ts";

/** What a chart shows. */
export interface LineChartOptions {
  /** Text above the chart. */
  title: string;
  /** Label under the x axis (x is the index of a value, from `xStart`). */
  xLabel: string;
  /** Label above the y axis. */
  yLabel: string;
  /** The lines, drawn in order (the last on top); non-finite values are skipped. */
  series: { label: string; values: number[] }[];
  /** Start the y axis at 0 when no value is below it (a loss). @default false */
  yFromZero?: boolean;
  /** The x of every series' first value (the iteration a resumed loss history starts at).
   * @default 1 */
  xStart?: number;
}

const WIDTH = 720, HEIGHT = 440;
const LEFT = 96, RIGHT = 24, TOP = 56, BOTTOM = 64;
const COLORS: [number, number, number][] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [
  214,
  39,
  40,
]];

/**
 * Rounded tick positions covering a range: steps of 1, 2 or 5 times a power of ten.
 *
 * @param low Smallest value.
 * @param high Largest value.
 * @param count About how many ticks.
 * @returns The tick values, ascending, inside [low, high].
 *
 * @example
 * ```ts
 * import { niceTicks } from "./line_chart.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
 * ```
 */
export function niceTicks(low: number, high: number, count: number): number[] {
  if (!(high > low)) return [low];
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= raw)!;
  const ticks: number[] = [];
  for (let tick = Math.ceil(low / step - 1e-9) * step; tick <= high + step * 1e-9; tick += step) {
    ticks.push(Number(tick.toPrecision(12)));
  }
  return ticks;
}

/**
 * Draws a line chart into an RGB image (see {@linkcode writeLineChart}).
 *
 * @param options Title, axis labels and series.
 * @returns The chart's pixels, 720x440.
 *
 * @example
 * ```ts
 * import { renderLineChart } from "./line_chart.ts";
 * import { assertEquals } from "./assert.ts";
 * const chart = renderLineChart({
 *   title: "loss", xLabel: "iteration", yLabel: "loss", series: [{ label: "train", values: [3, 2, 1] }],
 * });
 * assertEquals([chart.width, chart.height], [720, 440]);
 * ```
 */
export function renderLineChart(options: LineChartOptions): RasterImage {
  const image: RasterImage = {
    data: new Uint8Array(WIDTH * HEIGHT * 3).fill(255),
    width: WIDTH,
    height: HEIGHT,
    channels: 3,
  };
  const finite = options.series.flatMap((series) => series.values.filter(Number.isFinite));
  const length = Math.max(1, ...options.series.map((series) => series.values.length));
  let low = finite.length ? Math.min(...finite) : 0, high = finite.length ? Math.max(...finite) : 1;
  if (options.yFromZero && low >= 0) low = 0;
  if (high - low < 1e-12) [low, high] = [low - 0.5, high + 0.5];
  const yTicks = niceTicks(low, high, 5);
  const first = options.xStart ?? 1;
  const xTicks = niceTicks(first, first + Math.max(1, length - 1), 6)
    .filter((tick) => Number.isInteger(tick));
  const plotWidth = WIDTH - LEFT - RIGHT, plotHeight = HEIGHT - TOP - BOTTOM;
  const toX = (x: number) => LEFT + (length <= 1 ? 0 : (x - first) / (length - 1)) * plotWidth;
  const toY = (value: number) => TOP + (1 - (value - low) / (high - low)) * plotHeight;
  const fontHeight = GLYPH_HEIGHT * 2;

  drawText(image, options.title, {
    x: Math.round((WIDTH - textWidth(options.title, 2)) / 2),
    y: 10,
  });
  drawText(image, options.yLabel, { x: 8, y: TOP - fontHeight - 8 });
  drawText(image, options.xLabel, {
    x: LEFT + Math.round((plotWidth - textWidth(options.xLabel, 2)) / 2),
    y: HEIGHT - fontHeight - 4,
  });
  for (const tick of yTicks) {
    const y = Math.round(toY(tick));
    line(image, LEFT, y, WIDTH - RIGHT, y, [225, 225, 225], 1);
    line(image, LEFT - 6, y, LEFT, y, [0, 0, 0], 1);
    const label = formatTick(tick);
    drawText(image, label, { x: LEFT - 10 - textWidth(label, 2), y: y - 7 });
  }
  for (const tick of xTicks) {
    const x = Math.round(toX(tick));
    line(image, x, TOP + plotHeight, x, TOP + plotHeight + 6, [0, 0, 0], 1);
    const label = formatTick(tick);
    drawText(image, label, { x: x - textWidth(label, 2) / 2, y: TOP + plotHeight + 10 });
  }
  line(image, LEFT, TOP, LEFT, TOP + plotHeight, [0, 0, 0], 1);
  line(image, LEFT, TOP + plotHeight, WIDTH - RIGHT, TOP + plotHeight, [0, 0, 0], 1);

  options.series.forEach((series, index) => {
    const color = COLORS[index % COLORS.length]!;
    let previous: [number, number] | undefined;
    series.values.forEach((value, at) => {
      if (!Number.isFinite(value)) {
        previous = undefined;
        return;
      }
      const point: [number, number] = [toX(first + at), toY(value)];
      if (previous) line(image, previous[0], previous[1], point[0], point[1], color, 2);
      else line(image, point[0], point[1], point[0], point[1], color, 2);
      previous = point;
    });
  });
  if (options.series.length > 1) drawLegend(image, options.series, fontHeight);
  return image;
}

/**
 * Draws the legend on a white box in the corner of the plot where the fewest pixels of the
 * lines are (top right when several are free), so that it hides as little of them as it can.
 */
function drawLegend(
  image: RasterImage,
  series: LineChartOptions["series"],
  fontHeight: number,
): void {
  const rowHeight = fontHeight + 6, pad = 8, sample = 30;
  const boxWidth = 2 * pad + sample + Math.max(...series.map((s) => textWidth(s.label, 2)));
  const boxHeight = 2 * pad + series.length * rowHeight - 6;
  const [left, top] = [LEFT + 8, TOP + 4];
  const [right, bottom] = [WIDTH - RIGHT - 8 - boxWidth, HEIGHT - BOTTOM - 8 - boxHeight];
  const corners: [number, number][] = [[right, top], [left, top], [right, bottom], [left, bottom]];
  const colors = series.map((_, index) => COLORS[index % COLORS.length]!);
  const covered = ([x0, y0]: [number, number]) => {
    let count = 0;
    for (let y = y0; y < y0 + boxHeight; y++) {
      for (let x = x0; x < x0 + boxWidth; x++) {
        const offset = (y * image.width + x) * 3;
        const [r, g, b] = [image.data[offset], image.data[offset + 1], image.data[offset + 2]];
        if (colors.some((color) => color[0] === r && color[1] === g && color[2] === b)) count++;
      }
    }
    return count;
  };
  const counts = corners.map(covered);
  const [x0, y0] = corners[counts.indexOf(Math.min(...counts))]!;
  for (let y = y0; y < y0 + boxHeight; y++) line(image, x0, y, x0 + boxWidth - 1, y, WHITE, 1);
  series.forEach((entry, index) => {
    const y = y0 + pad + index * rowHeight;
    line(image, x0 + pad, y + 8, x0 + pad + sample - 8, y + 8, colors[index]!, 3);
    drawText(image, entry.label, { x: x0 + pad + sample, y });
  });
}

const WHITE: [number, number, number] = [255, 255, 255];

/**
 * Writes a line chart as PNG, atomically.
 *
 * @param path The PNG file; its folder is created if missing.
 * @param options Title, axis labels and series.
 * @returns A promise that resolves when the file is written.
 *
 * @example
 * ```ts
 * import { writeLineChart } from "./line_chart.ts";
 * import { assert } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * await writeLineChart(`${dir}/loss.png`, {
 *   title: "loss", xLabel: "iteration", yLabel: "loss", series: [{ label: "train", values: [1, 0.5] }],
 * });
 * assert((await Deno.stat(`${dir}/loss.png`)).size > 0);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeLineChart(path: string, options: LineChartOptions): Promise<void> {
  await writeFileAtomic(path, await encodeImage(renderLineChart(options)));
}

function formatTick(value: number): string {
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e5 || magnitude < 1e-3) return value.toExponential(1);
  return String(Number(value.toPrecision(4)));
}

function line(
  image: RasterImage,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  color: readonly [number, number, number],
  thickness: number,
): void {
  const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0)) * 2));
  for (let step = 0; step <= steps; step++) {
    const x = Math.round(x0 + (x1 - x0) * step / steps);
    const y = Math.round(y0 + (y1 - y0) * step / steps);
    for (let dy = 0; dy < thickness; dy++) {
      for (let dx = 0; dx < thickness; dx++) {
        const px = x + dx - Math.floor(thickness / 2), py = y + dy - Math.floor(thickness / 2);
        if (px < 0 || py < 0 || px >= image.width || py >= image.height) continue;
        const offset = (py * image.width + px) * 3;
        image.data[offset] = color[0];
        image.data[offset + 1] = color[1];
        image.data[offset + 2] = color[2];
      }
    }
  }
}

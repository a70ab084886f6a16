import "@tensorflow/tfjs-backend-cpu";
import * as tf from "@tensorflow/tfjs-core";
import sharp from "sharp";
import { assert, assertEquals } from "../lib/assert.ts";
import { glyph, GLYPH_HEIGHT, textWidth } from "../lib/bitmap_font.ts";
import { composeFigure, writeFigure } from "../lib/figure.ts";
import { niceTicks, renderLineChart, writeLineChart } from "../lib/line_chart.ts";
import { CLASS_COLORS } from "../lib/classes.js";
import { paintClasses } from "../exercises/semaseg_dataset.ts";

function pixel(image: { data: Uint8Array; width: number }, x: number, y: number): number[] {
  const offset = (y * image.width + x) * 3;
  return Array.from(image.data.subarray(offset, offset + 3));
}

Deno.test("glyph() has a distinct picture for every printable ASCII character", () => {
  const seen = new Set<string>();
  for (let code = 32; code < 127; code++) {
    const rows = glyph(String.fromCharCode(code));
    assertEquals(rows.length, GLYPH_HEIGHT);
    assert(rows.every((row) => row.length === 5));
    seen.add(JSON.stringify(rows));
  }
  assertEquals(seen.size, 95);
});

Deno.test("paintClasses() paints the dataset's colours and leaks no tensors", () => {
  const before = tf.memory().numTensors;
  const classMap = tf.tensor2d([[0, 1], [2, 7]], [2, 2], "int32");
  const painted = paintClasses(classMap);
  const values = Array.from(painted.dataSync()).map((value) => Math.round(value * 255));
  assertEquals(values, [...CLASS_COLORS.flat(), 255, 255, 255]);
  tf.dispose([classMap, painted]);
  assertEquals(tf.memory().numTensors, before);
});

Deno.test("composeFigure() upscales panels with nearest-neighbour under their titles", async () => {
  const rgb = tf.tensor3d([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], [2, 2, 3]);
  const grey = tf.tensor3d([0, 0.5, 1, 0.25], [2, 2, 1]);
  const figure = await composeFigure([
    { title: "input", image: rgb },
    { title: "predicted", image: grey },
  ], { scale: 100, title: "madara_0010" });
  // Layout: margin 12, figure title 28, panel titles 28, panels 200 px, margin 12.
  assertEquals(figure.height, 12 + 28 + 28 + 200 + 12);
  const top = 12 + 28 + 28;
  assertEquals(pixel(figure, 12 + 50, top + 50), [255, 0, 0]);
  assertEquals(pixel(figure, 12 + 150, top + 50), [0, 255, 0]);
  assertEquals(pixel(figure, 12 + 50, top + 150), [0, 0, 255]);
  const second = 12 + 200 + 12;
  assertEquals(pixel(figure, second + 150, top + 50), [128, 128, 128]);
  assertEquals(pixel(figure, second + 150, top + 150), [64, 64, 64]);
  const titleRow = figure.data.subarray(40 * figure.width * 3, 66 * figure.width * 3);
  assert(titleRow.some((value) => value === 0), "panel titles are drawn in black");
  tf.dispose([rgb, grey]);
});

Deno.test("writeFigure() writes a PNG whose panels are at least 256 px by default", async () => {
  const dir = await Deno.makeTempDir();
  const image = tf.zeros([64, 64, 3]) as tf.Tensor3D;
  const before = tf.memory().numTensors;
  await writeFigure(`${dir}/figure.png`, [{ title: "input", image }, { title: "mask", image }]);
  assertEquals(tf.memory().numTensors, before);
  const metadata = await sharp(`${dir}/figure.png`).metadata();
  assertEquals(metadata.format, "png");
  assertEquals(metadata.width, 12 + 256 + 12 + 256 + 12);
  assertEquals([...Deno.readDirSync(dir)].map((entry) => entry.name), ["figure.png"]);
  image.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("composeFigure() widens a column to fit a long title", async () => {
  const image = tf.zeros([4, 4, 1]) as tf.Tensor3D;
  const title = "after binarization";
  const figure = await composeFigure([{ title, image }], { scale: 2 });
  assertEquals(figure.width, 12 + textWidth(title, 2) + 12);
  image.dispose();
});

Deno.test("niceTicks() picks round steps inside the range", () => {
  assertEquals(niceTicks(0.13, 0.71, 5), [0.2, 0.4, 0.6]);
  assertEquals(niceTicks(0.13, 0.71, 10), [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
  assertEquals(niceTicks(1, 500, 6), [100, 200, 300, 400, 500]);
  assertEquals(niceTicks(2, 2, 5), [2]);
});

Deno.test("renderLineChart() draws a falling curve in the series colour", () => {
  const values = Array.from({ length: 100 }, (_, index) => 1 / (1 + index / 10));
  const chart = renderLineChart({
    title: "bin_loss",
    xLabel: "iteration",
    yLabel: "loss",
    series: [{ label: "train", values }],
  });
  const blue: number[] = [];
  for (let x = 0; x < chart.width; x++) {
    for (let y = 0; y < chart.height; y++) {
      if (pixel(chart, x, y).join() === "31,119,180") {
        blue.push(y);
        break;
      }
    }
  }
  assert(blue.length > 400, `curve spans the plot width (${blue.length} columns)`);
  assert(blue[0]! < blue[blue.length - 1]!, "the curve falls (higher on the left)");
});

Deno.test("renderLineChart() puts the legend where it hides none of the lines", () => {
  // A short run's loss: it stays near its start, so with the axis from 0 the lines run along
  // the top of the plot, through the top corners.
  const each = Array.from({ length: 30 }, (_, index) => 1.1 - index / 150 + (index % 3) * 0.02);
  const mean = each.map((_, index) => (each[index]! + each[Math.max(0, index - 1)]!) / 2);
  const chart = (series: { label: string; values: number[] }[]) =>
    renderLineChart({
      title: "loss",
      xLabel: "iteration",
      yLabel: "loss",
      series,
      yFromZero: true,
    });
  const withLegend = chart([{ label: "each iteration", values: each }, {
    label: "mean",
    values: mean,
  }]);
  const alone = chart([{ label: "each iteration", values: each }]); // the same axes, no legend
  const lineColors = ["31,119,180", "255,127,14"];
  let hidden = 0, drawn = 0;
  for (let y = 0; y < alone.height; y++) {
    for (let x = 0; x < alone.width; x++) {
      if (pixel(alone, x, y).join() !== lineColors[0]) continue;
      drawn++;
      if (!lineColors.includes(pixel(withLegend, x, y).join())) hidden++;
    }
  }
  assert(drawn > 500, `the line is drawn (${drawn} pixels)`);
  assertEquals(hidden, 0, `the legend hides ${hidden} pixels of the line`);
});

Deno.test("renderLineChart() numbers the x axis from xStart", () => {
  // Ticks every 20: from x 1 the first is 20, from x 51 (a run resumed at 50) it is 60.
  const values = Array.from({ length: 100 }, (_, index) => 1 / (1 + index));
  const firstTick = (xStart?: number) => {
    const chart = renderLineChart({
      title: "t",
      xLabel: "x",
      yLabel: "y",
      series: [{ label: "a", values }],
      xStart,
    });
    const below = 440 - 64 + 4; // a row of the tick marks under the x axis
    for (let x = 97; x < chart.width; x++) if (pixel(chart, x, below).join() === "0,0,0") return x;
  };
  const [left, width] = [96, 720 - 96 - 24];
  assertEquals(firstTick(), Math.round(left + (20 - 1) / 99 * width));
  assertEquals(firstTick(51), Math.round(left + (60 - 51) / 99 * width));
});

Deno.test("writeLineChart() writes a PNG and skips non-finite values", async () => {
  const dir = await Deno.makeTempDir();
  await writeLineChart(`${dir}/loss.png`, {
    title: "loss",
    xLabel: "iteration",
    yLabel: "loss",
    series: [{ label: "train", values: [1, NaN, 0.5, Infinity, 0.25] }, {
      label: "test",
      values: [0.9, 0.6],
    }],
  });
  const metadata = await sharp(`${dir}/loss.png`).metadata();
  assertEquals([metadata.format, metadata.width, metadata.height], ["png", 720, 440]);
  await Deno.remove(dir, { recursive: true });
});

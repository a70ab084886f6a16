/**
 * Figures with titled panels side by side, like the tutorial's matplotlib
 * figures: each panel upscaled with nearest-neighbour so that a 64x64 result
 * is readable, a title above it drawn with the built-in bitmap font, white
 * around. Written as PNG, atomically.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { drawText, GLYPH_HEIGHT, textWidth } from "./bitmap_font.ts";
import { encodeImage, type RasterImage, writeFileAtomic } from "./image_io.ts";

/** One panel: a title and an image, shape [h, w, 3] or [h, w, 1], float in [0, 1]. */
export interface Panel {
  /** Text above the panel. */
  title: string;
  /** The picture, shape [height, width, 3] (RGB) or [height, width, 1] (grey), in [0, 1]. */
  image: tf.Tensor3D;
}

/** Layout of a figure. */
export interface FigureOptions {
  /** Nearest-neighbour upscale factor. @default the smallest that makes the largest panel side at least 256 px */
  scale?: number;
  /** A title line above the whole figure. @default none */
  title?: string;
  /** A key under the panels: a colour swatch and its name per class. @default none */
  legend?: LegendEntry[];
}

/** One entry of a figure's key: a class name and its colour in the class maps. */
export interface LegendEntry {
  /** The class name. */
  label: string;
  /** Its colour, RGB 0 to 255. */
  color: [number, number, number];
}

/**
 * The key of a class map: each class painted as the exercise paints it.
 *
 * @param classNames The class names, by index.
 * @param paint The exercise's painting of a class map `[h, w]` into `[h, w, 3]` or `[h, w, 1]`
 *   in [0, 1] (`paintClasses`, `paintBinary`).
 * @returns One entry per class, its colour in 0 to 255.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { classLegend } from "./figure.ts";
 * import { assertEquals } from "./assert.ts";
 * const grey = (map: tf.Tensor2D) => tf.expandDims(tf.cast(map, "float32"), 2) as tf.Tensor3D;
 * assertEquals(await classLegend(["background", "newt"], grey), [
 *   { label: "background", color: [0, 0, 0] },
 *   { label: "newt", color: [255, 255, 255] },
 * ]);
 * ```
 */
export async function classLegend(
  classNames: readonly string[],
  paint: (classMap: tf.Tensor2D) => tf.Tensor3D,
): Promise<LegendEntry[]> {
  const painted = tf.tidy(() => {
    const indices = tf.tensor2d([classNames.map((_, index) => index)], undefined, "int32");
    return paint(indices); // [1, classes, 1 or 3]
  });
  const values = await painted.data(); // not dataSync(): webgpu reads only asynchronously
  const channels = painted.shape[2];
  painted.dispose();
  return classNames.map((label, index) => {
    const rgb = [0, 1, 2].map((channel) =>
      Math.round(values[index * channels + (channels === 1 ? 0 : channel)]! * 255)
    );
    return { label, color: rgb as [number, number, number] };
  });
}

const MARGIN = 12;
const FONT_SCALE = 2;
const TITLE_STRIP = GLYPH_HEIGHT * FONT_SCALE + 10;

/**
 * Composes panels into one RGB image (see {@linkcode writeFigure}).
 *
 * @param panels The panels, left to right.
 * @param options Upscale factor, figure title and key.
 * @returns The figure's pixels.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { composeFigure } from "./figure.ts";
 * import { assertEquals } from "./assert.ts";
 * const image = tf.zeros([4, 4, 1]) as tf.Tensor3D;
 * const figure = await composeFigure([{ title: "a", image }, { title: "b", image }], { scale: 2 });
 * assertEquals(figure.height, 12 + 28 + 8 + 12);
 * image.dispose();
 * ```
 */
export async function composeFigure(
  panels: Panel[],
  options: FigureOptions = {},
): Promise<RasterImage> {
  if (panels.length === 0) throw new Error("composeFigure() needs at least one panel");
  const largest = Math.max(...panels.map((panel) => Math.max(...panel.image.shape.slice(0, 2))));
  const scale = options.scale ?? Math.max(1, Math.ceil(256 / largest));
  const sizes = panels.map((panel) => ({
    width: panel.image.shape[1] * scale,
    height: panel.image.shape[0] * scale,
  }));
  const columns = sizes.map((size, index) =>
    Math.max(size.width, textWidth(panels[index]!.title, FONT_SCALE))
  );
  const top = MARGIN + (options.title ? TITLE_STRIP : 0);
  const legend = options.legend ?? [];
  const legendWidth = legend.reduce(
    (sum, entry) => sum + SWATCH + 6 + textWidth(entry.label, FONT_SCALE) + 18,
    0,
  );
  const width = Math.max(
    MARGIN + columns.reduce((sum, column) => sum + column + MARGIN, 0),
    2 * MARGIN + textWidth(options.title ?? "", FONT_SCALE),
    2 * MARGIN + legendWidth,
  );
  const panelsBottom = top + TITLE_STRIP + Math.max(...sizes.map((size) => size.height));
  const height = panelsBottom + (legend.length ? LEGEND_STRIP : 0) + MARGIN;
  const figure: RasterImage = {
    data: new Uint8Array(width * height * 3).fill(255),
    width,
    height,
    channels: 3,
  };
  if (options.title) drawText(figure, options.title, { x: MARGIN, y: MARGIN, scale: FONT_SCALE });
  let left = MARGIN;
  for (const [index, panel] of panels.entries()) {
    const column = columns[index]!, size = sizes[index]!;
    const titleLeft = left + Math.floor((column - textWidth(panel.title, FONT_SCALE)) / 2);
    drawText(figure, panel.title, { x: titleLeft, y: top, scale: FONT_SCALE });
    const [, panelWidth, channels] = panel.image.shape;
    const values = await panel.image.data();
    const panelLeft = left + Math.floor((column - size.width) / 2), panelTop = top + TITLE_STRIP;
    for (let y = 0; y < size.height; y++) {
      const sourceRow = Math.floor(y / scale) * panelWidth;
      for (let x = 0; x < size.width; x++) {
        const source = (sourceRow + Math.floor(x / scale)) * channels;
        const target = ((panelTop + y) * width + panelLeft + x) * 3;
        for (let channel = 0; channel < 3; channel++) {
          const value = values[source + (channels === 1 ? 0 : channel)]!;
          figure.data[target + channel] = Math.round(Math.min(Math.max(value, 0), 1) * 255);
        }
      }
    }
    left += column + MARGIN;
  }
  drawLegend(figure, legend, panelsBottom + 10);
  return figure;
}

const SWATCH = GLYPH_HEIGHT * FONT_SCALE;
const LEGEND_STRIP = SWATCH + 10;

/** Draws the key in one row from the left margin: a bordered swatch, then the name. */
function drawLegend(figure: RasterImage, legend: LegendEntry[], top: number): void {
  let x = MARGIN;
  for (const { label, color } of legend) {
    for (let y = 0; y < SWATCH; y++) {
      for (let dx = 0; dx < SWATCH; dx++) {
        const border = y === 0 || dx === 0 || y === SWATCH - 1 || dx === SWATCH - 1;
        const at = ((top + y) * figure.width + x + dx) * 3;
        figure.data.set(border ? [96, 96, 96] : color, at);
      }
    }
    drawText(figure, label, { x: x + SWATCH + 6, y: top, scale: FONT_SCALE });
    x += SWATCH + 6 + textWidth(label, FONT_SCALE) + 18;
  }
}

/**
 * Writes a PNG figure: panels side by side on white, each with its title
 * above, upscaled with nearest-neighbour. The file is written atomically.
 *
 * @param path The PNG file; its folder is created if missing.
 * @param panels The panels, left to right.
 * @param options Upscale factor and figure title.
 * @returns A promise that resolves when the file is written.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { writeFigure } from "./figure.ts";
 * import { assert } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * const image = tf.ones([8, 8, 3]) as tf.Tensor3D;
 * await writeFigure(`${dir}/figure.png`, [{ title: "input", image }]);
 * assert((await Deno.stat(`${dir}/figure.png`)).size > 0);
 * image.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFigure(
  path: string,
  panels: Panel[],
  options: FigureOptions = {},
): Promise<void> {
  const figure = await composeFigure(panels, options);
  await writeFileAtomic(path, await encodeImage(figure));
}

/**
 * A 5x7 pixel font for printable ASCII, drawn into raw RGB pixels, so that
 * figures get their titles and tick labels on a machine without any fonts.
 *
 * @module
 */
import type { RasterImage } from "./image_io.ts";

/** Glyph width in font pixels (without spacing). */
export const GLYPH_WIDTH = 5;
/** Line height in font pixels: 7 above the baseline, 2 for descenders (g, j, p, q, y). */
export const GLYPH_HEIGHT = 9;

// Rows of five pixels per character from the top of the line, "#" set and "." clear;
// missing rows at the bottom are clear.
const GLYPHS: Record<string, string> = {
  " ": "..... ..... ..... ..... ..... ..... .....",
  "!": "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
  '"': ".#.#. .#.#. .#.#. ..... ..... ..... .....",
  "#": ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
  "$": "..#.. .#### #.#.. .###. ..#.# ####. ..#..",
  "%": "##... ##..# ...#. ..#.. .#... #..## ...##",
  "&": ".##.. #..#. #.#.. .#... #.#.# #..#. .##.#",
  "'": "..#.. ..#.. .#... ..... ..... ..... .....",
  "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
  ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
  "*": "..... ..#.. #.#.# .###. #.#.# ..#.. .....",
  "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
  ",": "..... ..... ..... ..... .##.. ..#.. .#...",
  "-": "..... ..... ..... ##### ..... ..... .....",
  ".": "..... ..... ..... ..... ..... .##.. .##..",
  "/": "..... ....# ...#. ..#.. .#... #.... .....",
  "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
  "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
  "2": ".###. #...# ....# ...#. ..#.. .#... #####",
  "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
  "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
  "5": "##### #.... ####. ....# ....# #...# .###.",
  "6": "..##. .#... #.... ####. #...# #...# .###.",
  "7": "##### ....# ...#. ..#.. .#... .#... .#...",
  "8": ".###. #...# #...# .###. #...# #...# .###.",
  "9": ".###. #...# #...# .#### ....# ...#. .##..",
  ":": "..... .##.. .##.. ..... .##.. .##.. .....",
  ";": "..... .##.. .##.. ..... .##.. ..#.. .#...",
  "<": "...#. ..#.. .#... #.... .#... ..#.. ...#.",
  "=": "..... ..... ##### ..... ##### ..... .....",
  ">": ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
  "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
  "@": ".###. #...# ....# .##.# #.#.# #.#.# .###.",
  "A": ".###. #...# #...# ##### #...# #...# #...#",
  "B": "####. #...# #...# ####. #...# #...# ####.",
  "C": ".###. #...# #.... #.... #.... #...# .###.",
  "D": "###.. #..#. #...# #...# #...# #..#. ###..",
  "E": "##### #.... #.... ####. #.... #.... #####",
  "F": "##### #.... #.... ####. #.... #.... #....",
  "G": ".###. #...# #.... #.### #...# #...# .####",
  "H": "#...# #...# #...# ##### #...# #...# #...#",
  "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
  "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
  "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
  "L": "#.... #.... #.... #.... #.... #.... #####",
  "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
  "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
  "O": ".###. #...# #...# #...# #...# #...# .###.",
  "P": "####. #...# #...# ####. #.... #.... #....",
  "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
  "R": "####. #...# #...# ####. #.#.. #..#. #...#",
  "S": ".#### #.... #.... .###. ....# ....# ####.",
  "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
  "U": "#...# #...# #...# #...# #...# #...# .###.",
  "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
  "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
  "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
  "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
  "Z": "##### ....# ...#. ..#.. .#... #.... #####",
  "[": ".###. .#... .#... .#... .#... .#... .###.",
  "\\": "..... #.... .#... ..#.. ...#. ....# .....",
  "]": ".###. ...#. ...#. ...#. ...#. ...#. .###.",
  "^": "..#.. .#.#. #...# ..... ..... ..... .....",
  "_": "..... ..... ..... ..... ..... ..... #####",
  "`": ".#... ..#.. ...#. ..... ..... ..... .....",
  "a": "..... ..... .###. ....# .#### #...# .####",
  "b": "#.... #.... #.##. ##..# #...# #...# ####.",
  "c": "..... ..... .###. #.... #.... #...# .###.",
  "d": "....# ....# .##.# #..## #...# #...# .####",
  "e": "..... ..... .###. #...# ##### #.... .###.",
  "f": "..##. .#..# .#... ###.. .#... .#... .#...",
  "g": "..... ..... .#### #...# #...# #...# .#### ....# .###.",
  "h": "#.... #.... #.##. ##..# #...# #...# #...#",
  "i": "..#.. ..... .##.. ..#.. ..#.. ..#.. .###.",
  "j": "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..",
  "k": "#.... #.... #..#. #.#.. ##... #.#.. #..#.",
  "l": ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
  "m": "..... ..... ##.#. #.#.# #.#.# #...# #...#",
  "n": "..... ..... #.##. ##..# #...# #...# #...#",
  "o": "..... ..... .###. #...# #...# #...# .###.",
  "p": "..... ..... ####. #...# #...# #...# ####. #.... #....",
  "q": "..... ..... .#### #...# #...# #...# .#### ....# ....#",
  "r": "..... ..... #.##. ##..# #.... #.... #....",
  "s": "..... ..... .###. #.... .###. ....# ####.",
  "t": ".#... .#... ###.. .#... .#... .#..# ..##.",
  "u": "..... ..... #...# #...# #...# #..## .##.#",
  "v": "..... ..... #...# #...# #...# .#.#. ..#..",
  "w": "..... ..... #...# #...# #.#.# #.#.# .#.#.",
  "x": "..... ..... #...# .#.#. ..#.. .#.#. #...#",
  "y": "..... ..... #...# #...# #...# #...# .#### ....# .###.",
  "z": "..... ..... ##### ...#. ..#.. .#... #####",
  "{": "...#. ..#.. ..#.. .#... ..#.. ..#.. ...#.",
  "|": "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
  "}": ".#... ..#.. ..#.. ...#. ..#.. ..#.. .#...",
  "~": "..... ..... .#... #.#.# ...#. ..... .....",
};

/**
 * The pixels of one character; characters outside printable ASCII draw as "?".
 *
 * @param char One character.
 * @returns {@linkcode GLYPH_HEIGHT} rows of five booleans, `true` where the pixel is set.
 *
 * @example
 * ```ts
 * import { glyph } from "./bitmap_font.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(glyph("-")[3], [true, true, true, true, true]);
 * assertEquals(glyph("é"), glyph("?"));
 * ```
 */
export function glyph(char: string): boolean[][] {
  const rows = (GLYPHS[char] ?? GLYPHS["?"]!).split(" ");
  while (rows.length < GLYPH_HEIGHT) rows.push(".....");
  return rows.map((row) => [...row].map((pixel) => pixel === "#"));
}

/**
 * Width of a line of text in image pixels: 6 font pixels per character
 * (5 plus 1 of spacing), less the trailing space.
 *
 * @param text The text.
 * @param scale Image pixels per font pixel.
 * @returns The width in image pixels.
 *
 * @example
 * ```ts
 * import { textWidth } from "./bitmap_font.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(textWidth("ab", 2), 22);
 * ```
 */
export function textWidth(text: string, scale: number): number {
  return text.length === 0 ? 0 : (text.length * (GLYPH_WIDTH + 1) - 1) * scale;
}

/** Where and how {@linkcode drawText} draws. */
export interface DrawTextOptions {
  /** Left edge in image pixels. */
  x: number;
  /** Top edge in image pixels. */
  y: number;
  /** Image pixels per font pixel. @default 2 */
  scale?: number;
  /** RGB colour, 0 to 255. @default [0, 0, 0] */
  color?: readonly [number, number, number];
}

/**
 * Draws one line of text into an RGB image; pixels outside the image are
 * skipped.
 *
 * @param image The image to draw into (3 channels), changed in place.
 * @param text The text, printable ASCII.
 * @param options Position, scale and colour.
 *
 * @example
 * ```ts
 * import { drawText } from "./bitmap_font.ts";
 * import { assertEquals } from "./assert.ts";
 * const image = { data: new Uint8Array(5 * 9 * 3).fill(255), width: 5, height: 9, channels: 3 };
 * drawText(image, "-", { x: 0, y: 0, scale: 1 });
 * assertEquals(image.data[3 * (3 * 5)], 0); // row 3 of "-" is set
 * assertEquals(image.data[0], 255);
 * ```
 */
export function drawText(image: RasterImage, text: string, options: DrawTextOptions): void {
  const { x, y, scale = 2, color = [0, 0, 0] } = options;
  let left = x;
  for (const char of text) {
    const rows = glyph(char);
    rows.forEach((row, rowIndex) => {
      row.forEach((set, column) => {
        if (!set) return;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const px = left + column * scale + dx, py = y + rowIndex * scale + dy;
            if (px < 0 || py < 0 || px >= image.width || py >= image.height) continue;
            const offset = (py * image.width + px) * image.channels;
            image.data[offset] = color[0];
            image.data[offset + 1] = color[1];
            image.data[offset + 2] = color[2];
          }
        }
      });
    });
    left += (GLYPH_WIDTH + 1) * scale;
  }
}

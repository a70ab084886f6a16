/**
 * The built-in synthetic newt dataset: photos of newt-like animals drawn in
 * pure JavaScript from a seeded random generator, with exact-colour masks,
 * in the Imori layout and sizes. It lets every exercise run on a fresh
 * machine without downloading anything.
 *
 * Each newt is a head, trunk and tapering tail along a curved spine, with
 * four two-segment legs and toes. Akahara have brown backs with orange-red
 * belly patches showing at the sides (some lie belly up: orange-red with
 * black blotches); madara are green with black marbling (some with an
 * orange back stripe). Backgrounds are soil, leaf litter (with red-brown
 * leaves), gravel, moss or green plants, chosen independently of the class,
 * so that a model must learn colour and texture, not "bright blob".
 *
 * @module
 */
import type { RasterImage } from "./raster.ts";
import { createRng } from "./rng.ts";

/**
 * Version of the drawing code and of the files, stored with a generated set so that a stale one
 * is redrawn. 3: photos stored as PNG (lossless), no longer JPEG.
 */
export const SYNTHETIC_VERSION = 3;

/** The two species of the Imori dataset. */
export type NewtKind = "akahara" | "madara";

/** What {@linkcode renderNewtPhoto} draws. */
export interface NewtPhotoOptions {
  /** Species: sets the colours and the mask colour. */
  kind: NewtKind;
  /** Seed of this photo. */
  seed: number;
  /** Width in pixels. @default 256 */
  width?: number;
  /** Height in pixels. @default 144 or 455, chosen by the seed */
  height?: number;
}

/** A drawn photo and its mask (both RGB). */
export interface NewtPhoto {
  /** The photo. */
  image: RasterImage;
  /** The mask: black background, akahara (128, 0, 0), madara (0, 128, 0). */
  mask: RasterImage;
}

type Random = () => number;
type Rgb = [number, number, number];

/**
 * Draws one synthetic newt photo and its mask.
 *
 * @param options Species, seed and size.
 * @returns The photo and the mask, 8-bit RGB.
 *
 * @example
 * ```ts
 * import { renderNewtPhoto } from "./synthetic_newts.ts";
 * import { assert, assertEquals } from "./assert.ts";
 * const { image, mask } = renderNewtPhoto({ kind: "madara", seed: 3, width: 64, height: 48 });
 * assertEquals([image.width, image.height, mask.channels], [64, 48, 3]);
 * assert(mask.data.includes(128)); // some newt is in the picture
 * ```
 */
export function renderNewtPhoto(options: NewtPhotoOptions): NewtPhoto {
  const random = createRng(options.seed);
  const width = options.width ?? 256;
  const height = options.height ?? (random() < 0.5 ? 144 : 455);
  const canvas = new Float32Array(width * height * 3);
  drawBackground(canvas, width, height, random);
  const owner = new Int8Array(width * height); // 1 where a newt is
  const count = random() < 0.3 ? 2 : 1;
  const unit = Math.sqrt(width * height);
  for (let index = 0; index < count; index++) {
    const length = unit * (count === 2 ? 0.7 + 0.35 * random() : 1.0 + 0.6 * random());
    const outOfFrame = random() < 0.25;
    const centre = outOfFrame
      ? edgePoint(width, height, random)
      : [width * (0.2 + 0.6 * random()), height * (0.2 + 0.6 * random())] as const;
    drawNewt(canvas, owner, { width, height, kind: options.kind, length, centre, random });
  }
  finishPhoto(canvas, width, height, random);
  const image = new Uint8Array(width * height * 3);
  for (let index = 0; index < image.length; index++) {
    image[index] = Math.max(0, Math.min(255, Math.round(canvas[index]!)));
  }
  const mask = new Uint8Array(width * height * 3);
  const channel = options.kind === "akahara" ? 0 : 1;
  for (let pixel = 0; pixel < owner.length; pixel++) {
    if (owner[pixel]) mask[3 * pixel + channel] = 128;
  }
  return {
    image: { data: image, width, height, channels: 3 },
    mask: { data: mask, width, height, channels: 3 },
  };
}

/** How many photos the synthetic set holds, and from which seed. */
export interface SyntheticDatasetOptions {
  /** Seed of the whole set. @default 1 */
  seed?: number;
  /** Training photos per species. @default 8 */
  trainPerClass?: number;
  /** Test photos per species. @default 3 */
  testPerClass?: number;
}

/**
 * The photos and masks of one split of the synthetic set, drawn in memory in
 * the order the dataset reader lists them (akahara then madara, by number),
 * named as the files {@linkcode SyntheticDatasetOptions} describes: the page's
 * training worker trains on these, and `writeSyntheticDataset`
 * (`synthetic_files.ts`) stores the same drawings as files.
 *
 * @param split The training or the test photos (numbered on from train to test as in Imori).
 * @param options Seed and counts.
 * @returns The pairs, with the paths the files have in the Imori layout under `synthetic/`.
 *
 * @example
 * ```ts
 * import { syntheticPairs } from "./synthetic_newts.ts";
 * import { assertEquals } from "./assert.ts";
 * const pairs = syntheticPairs("test", { trainPerClass: 1, testPerClass: 1 });
 * assertEquals(pairs.map((pair) => pair.name), ["akahara_0002", "madara_0002"]);
 * assertEquals(pairs[0]!.maskFile, "synthetic/test/seg_images/akahara/akahara_0002.png");
 * ```
 */
export function syntheticPairs(
  split: "train" | "test",
  options: SyntheticDatasetOptions = {},
): SyntheticPair[] {
  const { seed = 1, trainPerClass = 8, testPerClass = 3 } = options;
  const pairs: SyntheticPair[] = [];
  const first = split === "train" ? 1 : trainPerClass + 1;
  const last = split === "train" ? trainPerClass : trainPerClass + testPerClass;
  for (const [kindIndex, kind] of NEWT_KINDS.entries()) {
    for (let number = first; number <= last; number++) {
      const name = `${kind}_${String(number).padStart(4, "0")}`;
      const photo = renderNewtPhoto({ kind, seed: mixSeed(seed, kindIndex, number) });
      pairs.push({
        ...photo,
        name,
        imageFile: `synthetic/${split}/images/${kind}/${name}.png`,
        maskFile: `synthetic/${split}/seg_images/${kind}/${name}.png`,
      });
    }
  }
  return pairs;
}

/** One drawn photo of the synthetic set with its name and the paths of its files. */
export interface SyntheticPair extends NewtPhoto {
  /** File stem, e.g. `madara_0010`. */
  name: string;
  /** The photo's path in the Imori layout, under `synthetic/`. */
  imageFile: string;
  /** The mask's path in the Imori layout, under `synthetic/`. */
  maskFile: string;
}

/** The two species, in the order the dataset reader lists their folders. */
export const NEWT_KINDS: readonly NewtKind[] = ["akahara", "madara"];

/**
 * Mixes numbers into a 32-bit seed (FNV-1a and a murmur step): the seed of one photo.
 *
 * @param values The set's seed, the species index and the photo number.
 * @returns An unsigned 32-bit seed.
 *
 * @example
 * ```ts
 * import { mixSeed } from "./synthetic_newts.ts";
 * import { assert } from "./assert.ts";
 * assert(mixSeed(1, 0, 1) !== mixSeed(1, 1, 1));
 * ```
 */
export function mixSeed(...values: number[]): number {
  let hash = 0x811c9dc5;
  for (const value of values) {
    hash = Math.imul(hash ^ (value >>> 0), 0x01000193) >>> 0;
    hash = Math.imul(hash ^ (hash >>> 13), 0x5bd1e995) >>> 0;
  }
  return hash;
}

function between(random: Random, low: number, high: number): number {
  return low + (high - low) * random();
}

function edgePoint(width: number, height: number, random: Random): readonly [number, number] {
  const side = Math.floor(random() * 4);
  const along = random();
  if (side === 0) return [width * along, height * 0.02];
  if (side === 1) return [width * along, height * 0.98];
  if (side === 2) return [width * 0.02, height * along];
  return [width * 0.98, height * along];
}

/** Smooth value noise in [0, 1] over the plane, cells of `cell` pixels. */
function valueNoise(random: Random, width: number, height: number, cell: number) {
  const columns = Math.ceil(width / cell) + 2, rows = Math.ceil(height / cell) + 2;
  const lattice = new Float32Array(columns * rows).map(() => random());
  return (x: number, y: number): number => {
    const gx = Math.min(Math.max(x / cell, 0), columns - 1.001);
    const gy = Math.min(Math.max(y / cell, 0), rows - 1.001);
    const x0 = Math.floor(gx), y0 = Math.floor(gy);
    const fx = gx - x0, fy = gy - y0;
    const sx = fx * fx * (3 - 2 * fx), sy = fy * fy * (3 - 2 * fy);
    const at = (column: number, row: number) => lattice[row * columns + column]!;
    const top = at(x0, y0) * (1 - sx) + at(x0 + 1, y0) * sx;
    const bottom = at(x0, y0 + 1) * (1 - sx) + at(x0 + 1, y0 + 1) * sx;
    return top * (1 - sy) + bottom * sy;
  };
}

/** Fractal noise: octaves of value noise from `cell` down, in [0, 1]. */
function fractalNoise(random: Random, width: number, height: number, cell: number, octaves = 4) {
  const layers = Array.from(
    { length: octaves },
    (_, octave) => valueNoise(random, width, height, Math.max(1.5, cell / 2 ** octave)),
  );
  const total = layers.reduce((sum, _, octave) => sum + 0.5 ** octave, 0);
  return (x: number, y: number): number =>
    layers.reduce((sum, layer, octave) => sum + layer(x, y) * 0.5 ** octave, 0) / total;
}

function paint(canvas: Float32Array, pixel: number, color: Rgb, alpha = 1): void {
  for (let channel = 0; channel < 3; channel++) {
    canvas[3 * pixel + channel] = canvas[3 * pixel + channel]! * (1 - alpha) +
      color[channel]! * alpha;
  }
}

function shade(color: Rgb, factor: number): Rgb {
  return [color[0] * factor, color[1] * factor, color[2] * factor];
}

function jitter(color: Rgb, random: Random, amount: number): Rgb {
  const factor = 1 + between(random, -amount, amount);
  return [
    color[0] * factor * between(random, 0.9, 1.1),
    color[1] * factor * between(random, 0.9, 1.1),
    color[2] * factor * between(random, 0.9, 1.1),
  ];
}

const SOILS: Rgb[] = [[92, 70, 52], [70, 56, 44], [110, 92, 70], [58, 50, 42]];
const LITTER: Rgb[] = [
  [120, 80, 45],
  [150, 100, 50],
  [95, 60, 35],
  [160, 70, 35],
  [130, 110, 60],
  [75, 50, 30],
];
const STONES: Rgb[] = [[150, 145, 135], [120, 110, 100], [185, 175, 160], [90, 88, 85], [
  160,
  130,
  105,
]];
const GREENS: Rgb[] = [[60, 105, 40], [85, 130, 50], [45, 80, 35], [100, 140, 60]];

function drawBackground(canvas: Float32Array, width: number, height: number, random: Random) {
  const kind = Math.floor(random() * 5); // soil, litter, gravel, moss, plants
  const base = kind === 3 ? GREENS[Math.floor(random() * GREENS.length)]! : jitter(
    SOILS[Math.floor(random() * SOILS.length)]!,
    random,
    0.15,
  );
  const texture = fractalNoise(random, width, height, between(random, 20, 50));
  const grain = valueNoise(random, width, height, 1.7);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const value = 0.55 + 0.9 * texture(x, y) + 0.25 * (grain(x, y) - 0.5);
      paint(canvas, y * width + x, shade(base, value));
    }
  }
  const area = width * height;
  if (kind === 1) {
    scatterLeaves(canvas, width, height, random, {
      count: Math.round(area / 500),
      colors: LITTER,
      size: [10, 34],
    });
  }
  if (kind === 2) scatterStones(canvas, width, height, random, Math.round(area / 60));
  if (kind === 3) {
    scatterLeaves(canvas, width, height, random, {
      count: Math.round(area / 150),
      colors: GREENS.map((color) => shade(color, 1.3)),
      size: [6, 18],
      slender: true,
    });
  }
  if (kind === 4) {
    if (random() < 0.5) scatterStones(canvas, width, height, random, Math.round(area / 90));
    scatterLeaves(canvas, width, height, random, {
      count: Math.round(area / 2500),
      colors: GREENS,
      size: [30, 80],
    });
  }
  if (kind !== 4 && random() < 0.35) {
    scatterLeaves(canvas, width, height, random, {
      count: Math.round(area / 6000) + 1,
      colors: random() < 0.5 ? GREENS : LITTER,
      size: [20, 60],
    });
  }
}

interface LeafOptions {
  count: number;
  colors: Rgb[];
  size: [number, number];
  slender?: boolean;
}

function scatterLeaves(
  canvas: Float32Array,
  width: number,
  height: number,
  random: Random,
  options: LeafOptions,
) {
  for (let leaf = 0; leaf < options.count; leaf++) {
    const length = between(random, options.size[0], options.size[1]);
    const halfWidth = length *
      (options.slender ? between(random, 0.06, 0.12) : between(random, 0.2, 0.35));
    const angle = random() * Math.PI * 2;
    const cx = random() * width, cy = random() * height;
    const color = jitter(
      options.colors[Math.floor(random() * options.colors.length)]!,
      random,
      0.2,
    );
    const cos = Math.cos(angle), sin = Math.sin(angle);
    const reach = length / 2 + 1;
    const gloss = between(random, 0, 0.25);
    for (let y = Math.max(0, Math.floor(cy - reach)); y < Math.min(height, cy + reach); y++) {
      for (let x = Math.max(0, Math.floor(cx - reach)); x < Math.min(width, cx + reach); x++) {
        const along = (x - cx) * cos + (y - cy) * sin, across = -(x - cx) * sin + (y - cy) * cos;
        const t = along / length + 0.5;
        if (t <= 0 || t >= 1) continue;
        const edge = halfWidth * Math.sin(Math.PI * t) ** 0.8;
        if (Math.abs(across) > edge) continue;
        const side = across / edge;
        let factor = 1 - 0.25 * side * side + gloss * (1 - Math.abs(side + 0.4));
        if (Math.abs(across) < 0.8) factor *= 0.75; // midrib
        paint(canvas, y * width + x, shade(color, factor));
      }
    }
  }
}

function scatterStones(
  canvas: Float32Array,
  width: number,
  height: number,
  random: Random,
  count: number,
) {
  for (let stone = 0; stone < count; stone++) {
    const rx = between(random, 3, 11), ry = rx * between(random, 0.6, 1);
    const angle = random() * Math.PI;
    const cx = random() * width, cy = random() * height;
    const color = jitter(STONES[Math.floor(random() * STONES.length)]!, random, 0.15);
    const cos = Math.cos(angle), sin = Math.sin(angle);
    for (let y = Math.max(0, Math.floor(cy - rx)); y < Math.min(height, cy + rx + 1); y++) {
      for (let x = Math.max(0, Math.floor(cx - rx)); x < Math.min(width, cx + rx + 1); x++) {
        const u = ((x - cx) * cos + (y - cy) * sin) / rx;
        const v = (-(x - cx) * sin + (y - cy) * cos) / ry;
        const distance = u * u + v * v;
        if (distance > 1) continue;
        const light = 1.05 - 0.3 * ((x - cx) / rx * 0.6 + (y - cy) / rx * 0.8) -
          0.35 * distance * distance;
        paint(canvas, y * width + x, shade(color, light));
      }
    }
  }
}

interface NewtOptions {
  width: number;
  height: number;
  kind: NewtKind;
  length: number;
  centre: readonly [number, number];
  random: Random;
}

/** Half-width of the body at spine position s (0 snout, 1 tail tip), as a fraction of length. */
function bodyWidth(s: number): number {
  return 1.3 * slenderWidth(s);
}

function slenderWidth(s: number): number {
  if (s < 0.1) return 0.062 * Math.sqrt(Math.max(0, 1 - ((0.1 - s) / 0.1) ** 2));
  if (s < 0.14) return 0.062 - (s - 0.1) / 0.04 * 0.012;
  if (s < 0.2) return 0.05 + (s - 0.14) / 0.06 * 0.022;
  if (s < 0.45) return 0.072 + 0.006 * Math.sin((s - 0.2) / 0.25 * Math.PI);
  if (s < 0.55) return 0.072 - (s - 0.45) / 0.1 * 0.024;
  return 0.048 * (1 - (s - 0.55) / 0.45) + 0.003;
}

function drawNewt(canvas: Float32Array, owner: Int8Array, options: NewtOptions): void {
  const { width, height, kind, length, centre, random } = options;
  // The spine: heading plus a steady turn and an S-bend.
  const steps = 160;
  const heading = random() * Math.PI * 2;
  const turn = between(random, -1.8, 1.8), bend = between(random, -0.7, 0.7);
  const phase = random() * Math.PI * 2;
  const spine: { x: number; y: number; tx: number; ty: number }[] = [];
  let x = 0, y = 0;
  for (let step = 0; step <= steps; step++) {
    const s = step / steps;
    const angle = heading + turn * (s - 0.4) + bend * Math.sin(2 * Math.PI * s + phase) *
        Math.min(1, s * 3);
    spine.push({ x, y, tx: Math.cos(angle), ty: Math.sin(angle) });
    x += Math.cos(angle) * length / steps;
    y += Math.sin(angle) * length / steps;
  }
  const middle = spine[Math.round(0.35 * steps)]!;
  const shiftX = centre[0] - middle.x, shiftY = centre[1] - middle.y;
  for (const point of spine) {
    point.x += shiftX;
    point.y += shiftY;
  }

  // Per pixel: nearest body coordinates (s along, v across in [-1, 1]) or a leg.
  const area = width * height;
  const closeness = new Float32Array(area).fill(Infinity);
  const along = new Float32Array(area), across = new Float32Array(area);
  const part = new Int8Array(area); // 0 none, 1 body, 2 leg
  const shadow = new Float32Array(area);
  const shadowX = length * 0.02, shadowY = length * 0.03;

  const disc = (
    cx: number,
    cy: number,
    radius: number,
    onPixel: (pixel: number, px: number, py: number) => void,
  ) => {
    for (
      let py = Math.max(0, Math.floor(cy - radius));
      py <= Math.min(height - 1, cy + radius);
      py++
    ) {
      for (
        let px = Math.max(0, Math.floor(cx - radius));
        px <= Math.min(width - 1, cx + radius);
        px++
      ) {
        onPixel(py * width + px, px, py);
      }
    }
  };
  spine.forEach((point, step) => {
    const s = step / steps, radius = bodyWidth(s) * length + 0.6;
    disc(point.x, point.y, radius, (pixel, px, py) => {
      const dx = px - point.x, dy = py - point.y;
      const distance = Math.hypot(dx, dy) / radius;
      if (distance > 1 || distance >= closeness[pixel]!) return;
      closeness[pixel] = distance;
      along[pixel] = s;
      across[pixel] = (point.tx * dy - point.ty * dx) / radius;
      part[pixel] = 1;
    });
    disc(point.x + shadowX, point.y + shadowY, radius * 1.25, (pixel, px, py) => {
      const distance = Math.hypot(px - point.x - shadowX, py - point.y - shadowY) / (radius * 1.25);
      if (distance < 1) shadow[pixel] = Math.max(shadow[pixel]!, 1 - distance);
    });
  });

  // Four legs, each upper and lower segment plus four toes, as capsules.
  const capsule = (
    ax: number,
    ay: number,
    bx: number,
    by: number,
    radiusA: number,
    radiusB: number,
  ) => {
    const dx = bx - ax, dy = by - ay, squared = dx * dx + dy * dy || 1;
    const reach = Math.max(radiusA, radiusB);
    for (
      let py = Math.max(0, Math.floor(Math.min(ay, by) - reach));
      py <= Math.min(height - 1, Math.max(ay, by) + reach);
      py++
    ) {
      for (
        let px = Math.max(0, Math.floor(Math.min(ax, bx) - reach));
        px <= Math.min(width - 1, Math.max(ax, bx) + reach);
        px++
      ) {
        const t = Math.min(1, Math.max(0, ((px - ax) * dx + (py - ay) * dy) / squared));
        const radius = radiusA + (radiusB - radiusA) * t;
        const distance = Math.hypot(px - ax - t * dx, py - ay - t * dy);
        const pixel = py * width + px;
        if (distance < radius * 1.3 + 1) {
          shadow[pixel] = Math.max(shadow[pixel]!, 0.5);
        }
        if (distance > radius || part[pixel] === 1) continue;
        part[pixel] = 2;
        along[pixel] = t;
        across[pixel] = distance / radius;
      }
    }
  };
  for (const [s, forward] of [[0.2, 1], [0.47, -1]] as const) {
    const point = spine[Math.round(s * steps)]!;
    for (const side of [-1, 1]) {
      const normalX = -point.ty * side, normalY = point.tx * side;
      const swing = forward * between(random, 0.2, 1.1);
      const upperAngle = Math.atan2(normalY, normalX) - side * swing;
      const elbow = side * forward * between(random, 0.3, 1.2);
      const upper = length * 0.085, lower = length * 0.075;
      const startX = point.x + normalX * length * 0.05, startY = point.y + normalY * length * 0.05;
      const kneeX = startX + Math.cos(upperAngle) * upper,
        kneeY = startY + Math.sin(upperAngle) * upper;
      const footAngle = upperAngle + elbow;
      const footX = kneeX + Math.cos(footAngle) * lower,
        footY = kneeY + Math.sin(footAngle) * lower;
      capsule(point.x, point.y, kneeX, kneeY, length * 0.024, length * 0.018);
      capsule(kneeX, kneeY, footX, footY, length * 0.017, length * 0.013);
      for (let toe = 0; toe < 4; toe++) {
        const toeAngle = footAngle + (toe - 1.5) * 0.45;
        capsule(
          footX,
          footY,
          footX + Math.cos(toeAngle) * length * 0.03,
          footY + Math.sin(toeAngle) * length * 0.03,
          length * 0.008,
          length * 0.005,
        );
      }
    }
  }

  // Colours.
  const pattern = fractalNoise(random, width, height, length * between(random, 0.05, 0.09), 3);
  const patches = fractalNoise(random, width, height, length * 0.06, 3);
  const skin = valueNoise(random, width, height, 1.5);
  const bellyUp = kind === "akahara" && random() < 0.2;
  const stripe = kind === "madara" && random() < 0.4;
  const back: Rgb = kind === "akahara"
    ? jitter([78, 52, 36], random, 0.25)
    : jitter([125, 165, 55], random, 0.15);
  const belly: Rgb = jitter([215, 78, 32], random, 0.1);
  const dark: Rgb = jitter([28, 26, 22], random, 0.2);
  const threshold = between(random, 0.46, 0.54);
  const head = spine[Math.round(0.06 * steps)]!;
  const eyes = [-1, 1].map((side) => [
    head.x - head.ty * side * length * 0.035,
    head.y + head.tx * side * length * 0.035,
  ]);
  for (let pixel = 0; pixel < area; pixel++) {
    if (shadow[pixel]! > 0 && !part[pixel]) {
      paint(canvas, pixel, [0, 0, 0], 0.45 * Math.min(1, shadow[pixel]! * 1.5));
    }
    if (!part[pixel]) continue;
    owner[pixel] = 1;
    const px = pixel % width, py = Math.floor(pixel / width);
    const v = part[pixel] === 1 ? across[pixel]! : across[pixel]! * 0.6;
    let color: Rgb;
    if (kind === "madara") {
      const marbled = pattern(px, py) > threshold;
      color = marbled ? dark : back;
      if (stripe && part[pixel] === 1 && Math.abs(v) < 0.12 && along[pixel]! > 0.12) {
        color = [200, 110, 40];
      }
    } else if (bellyUp && part[pixel] === 1) {
      color = Math.abs(v) > 0.85 ? back : pattern(px, py) > threshold + 0.08 ? dark : belly;
    } else {
      const side = Math.abs(v) > 0.72 && patches(px, py) > 0.45;
      const underTail = part[pixel] === 1 && along[pixel]! > 0.5 && v > 0.6;
      const toe = part[pixel] === 2 && patches(px, py) > 0.55;
      color = side || underTail || toe ? belly : back;
      if (!side && pattern(px, py) > threshold + 0.12) color = shade(color, 0.75);
    }
    let light = (1 - 0.45 * v * v) * (0.85 + 0.3 * skin(px, py));
    if (part[pixel] === 1 && Math.abs(v + 0.35) < 0.12 && skin(px + 7, py) > 0.55) light += 0.35;
    paint(canvas, pixel, shade(color, light));
    for (const [ex, ey] of eyes) {
      if (Math.hypot(px - ex!, py - ey!) < length * 0.013 + 0.5) paint(canvas, pixel, [15, 12, 10]);
    }
  }
}

function finishPhoto(canvas: Float32Array, width: number, height: number, random: Random) {
  // Soften like a camera lens, tint and light like a room, then sensor noise.
  const copy = canvas.slice();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let channel = 0; channel < 3; channel++) {
        let sum = 0, weight = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const sx = Math.min(width - 1, Math.max(0, x + dx));
            const sy = Math.min(height - 1, Math.max(0, y + dy));
            const w = dx === 0 && dy === 0 ? 4 : dx === 0 || dy === 0 ? 2 : 1;
            sum += copy[(sy * width + sx) * 3 + channel]! * w;
            weight += w;
          }
        }
        canvas[(y * width + x) * 3 + channel] = sum / weight;
      }
    }
  }
  const tint: Rgb = [
    between(random, 0.9, 1.1),
    between(random, 0.92, 1.08),
    between(random, 0.9, 1.12),
  ];
  const brightness = between(random, 0.85, 1.25);
  const lightX = random() * width, lightY = random() * height;
  const reach = Math.hypot(width, height);
  for (let pixel = 0; pixel < width * height; pixel++) {
    const px = pixel % width, py = Math.floor(pixel / width);
    const vignette = 1.1 - 0.35 * Math.hypot(px - lightX, py - lightY) / reach;
    for (let channel = 0; channel < 3; channel++) {
      const noise = (random() - 0.5) * 10;
      canvas[3 * pixel + channel] = canvas[3 * pixel + channel]! * tint[channel]! * brightness *
          vignette + noise;
    }
  }
}

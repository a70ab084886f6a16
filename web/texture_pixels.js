/**
 * A decoded photo's RGBA bytes as they are, read through a WebGL 2 texture:
 * a 2D canvas premultiplies alpha, which loses the colour under transparent
 * pixels that the dataset reader (sharp) keeps. Shared by the segmentation
 * page (`app.js`) and the training page's worker (`decode.ts`), on a window
 * or in a worker (`OffscreenCanvas`).
 *
 * @module
 */

/**
 * The RGBA bytes of a bitmap as decoded, rows top first.
 *
 * @param {ImageBitmap} bitmap The decoded photo (`premultiplyAlpha: "none"`).
 * @returns {Uint8ClampedArray | undefined} `width x height x 4` bytes; `undefined` without
 *   WebGL 2, for a bitmap larger than a texture, or when WebGL reports an error (the caller then
 *   reads a 2D canvas).
 */
export function texturePixels(bitmap) {
  const { width, height } = bitmap;
  const gl = new OffscreenCanvas(1, 1).getContext("webgl2", { premultipliedAlpha: false });
  if (!gl || Math.max(width, height) > gl.getParameter(gl.MAX_TEXTURE_SIZE)) return undefined;
  const texture = gl.createTexture();
  const framebuffer = gl.createFramebuffer();
  try {
    gl.bindTexture(gl.TEXTURE_2D, texture);
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
    gl.bindFramebuffer(gl.FRAMEBUFFER, framebuffer);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, texture, 0);
    const rgba = new Uint8ClampedArray(width * height * 4);
    gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, rgba); // rows top first
    return gl.getError() === gl.NO_ERROR ? rgba : undefined;
  } finally {
    gl.deleteFramebuffer(framebuffer);
    gl.deleteTexture(texture);
    gl.getExtension("WEBGL_lose_context")?.loseContext();
  }
}

// Image kernels with fixed parameters, matching torchvision.transforms.functional on CHW
// float tensors ("tensor path"). The random transforms in Transforms.swift draw parameters and
// call these; tests compare these against torchvision with the same parameters.
//
//   image  [C, H, W] Float, values in [0, range] (range 255 or 1)
//
// What is matched (see Tests/SSKDDataTests and scripts/reference/transforms_golden.py):
//   hflip, pad (constant), crop            exactly (pure data movement)
//   resize                                 TF.resize(float tensor, bilinear, antialias=True): the
//                                          separable triangle filter of aten's
//                                          _upsample_bilinear2d_aa (equal to plain bilinear,
//                                          align_corners=False, when upsampling)
//   rotate                                 TF.rotate(nearest, expand=False, center=None, fill):
//                                          the inverse affine grid of _gen_affine_grid sampled
//                                          with grid_sample(nearest, zeros, align_corners=False)
//   brightness/contrast/saturation/hue     TF.adjust_* on float tensors (_blend, rgb_to_grayscale
//                                          weights 0.2989/0.587/0.114, _rgb2hsv/_hsv2rgb)

#if canImport(Glibc)
import Glibc
#endif
import SSKDTensor

/// Image kernels with explicit parameters, named after torchvision.transforms.functional
/// (commonly imported as `TF`); the doc comments cite the torchvision function each matches.
public enum TF {
    /// The largest image side, crop, resize target or padding the kernels accept (2^31 - 1), so
    /// that sums and products of two sizes stay far inside an Int.
    public static let maxImageSize = Int(Int32.max)
    // MARK: Geometry

    /// Mirrors the image left to right (`TF.hflip`).
    public static func hflip(_ img: Image) -> Image {
        let c = img.channels, h = img.height, w = img.width
        var out = [Float](repeating: 0, count: img.pixels.count)
        img.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for row in 0..<(c * h) {
                    let s = src.baseAddress! + row * w, d = dst.baseAddress! + row * w
                    for x in 0..<w { d[x] = s[w - 1 - x] }
                }
            }
        }
        return Image(unchecked: img.shape, out, range: img.range)
    }

    /// Mirrors the image top to bottom (`TF.vflip`).
    public static func vflip(_ img: Image) -> Image {
        let c = img.channels, h = img.height, w = img.width
        var out = [Float](repeating: 0, count: img.pixels.count)
        for ch in 0..<c { for y in 0..<h {
            let s = (ch * h + (h - 1 - y)) * w, d = (ch * h + y) * w
            for x in 0..<w { out[d + x] = img.pixels[s + x] }
        } }
        return Image(unchecked: img.shape, out, range: img.range)
    }

    /// Constant padding (`TF.pad(img, [left, top, right, bottom], fill, "constant")`).
    public static func pad(_ img: Image, left: Int, top: Int, right: Int, bottom: Int, fill: Float = 0) throws -> Image {
        guard left >= 0, top >= 0, right >= 0, bottom >= 0 else {
            throw DataError("pad", "padding must be >= 0, got left \(left) top \(top) right \(right) bottom \(bottom)")
        }
        guard Swift.max(left, top, right, bottom) <= TF.maxImageSize else {
            throw DataError("pad", "padding must be at most \(TF.maxImageSize), got left \(left) top \(top) right \(right) bottom \(bottom)")
        }
        let c = img.channels, h = img.height, w = img.width
        let oh = h + top + bottom, ow = w + left + right
        var out = [Float](repeating: fill, count: try ImageShape(channels: c, height: oh, width: ow).checkedCount(op: "pad"))
        img.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for ch in 0..<c { for y in 0..<h {
                    let s = src.baseAddress! + (ch * h + y) * w
                    let d = dst.baseAddress! + (ch * oh + y + top) * ow + left
                    d.update(from: s, count: w)
                } }
            }
        }
        return Image(unchecked: ImageShape(channels: c, height: oh, width: ow), out, range: img.range)
    }

    /// The `height x width` window at (`top`, `left`) (`TF.crop`); parts outside the image are
    /// `fill` (0 in torchvision).
    public static func crop(_ img: Image, top: Int, left: Int, height: Int, width: Int, fill: Float = 0) throws -> Image {
        guard height > 0, width > 0 else { throw DataError("crop", "crop size must be positive, got \(height)x\(width)") }
        guard height <= TF.maxImageSize, width <= TF.maxImageSize else { throw DataError("crop", "crop size must be at most \(TF.maxImageSize), got \(height)x\(width)") }
        guard abs(top) <= 2 * TF.maxImageSize, abs(left) <= 2 * TF.maxImageSize else {
            throw DataError("crop", "window offset (top \(top), left \(left)) is out of range")
        }
        let c = img.channels, h = img.height, w = img.width
        let inside = top >= 0 && left >= 0 && top + height <= h && left + width <= w
        let n = try ImageShape(channels: c, height: height, width: width).checkedCount(op: "crop")
        let x0 = max(0, left), x1 = min(w, left + width)
        let y0 = max(0, top), y1 = min(h, top + height)
        let out = [Float](unsafeUninitializedCapacity: n) { dst, count in
            if !inside { dst.baseAddress!.initialize(repeating: fill, count: n) }
            img.pixels.withUnsafeBufferPointer { src in
                guard x0 < x1 && y0 < y1 else { return }
                for ch in 0..<c { for y in y0..<y1 {
                    let s = src.baseAddress! + (ch * h + y) * w + x0
                    let d = dst.baseAddress! + (ch * height + y - top) * width + (x0 - left)
                    d.update(from: s, count: x1 - x0)
                } }
            }
            count = n
        }
        return Image(unchecked: ImageShape(channels: c, height: height, width: width), out, range: img.range)
    }

    /// The centred `height x width` window (`TF.center_crop`: top = round((H - h) / 2)).
    public static func centerCrop(_ img: Image, height: Int, width: Int) throws -> Image {
        guard height > 0, width > 0, height <= TF.maxImageSize, width <= TF.maxImageSize else {
            throw DataError("center_crop", "crop size must be in 1...\(TF.maxImageSize), got \(height)x\(width)")
        }
        let top = Int((Double(img.height - height) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(img.width - width) / 2).rounded(.toNearestOrEven))
        if img.height < height || img.width < width {
            // torchvision pads symmetrically first, then crops; crop() with zero fill is the same.
            let padTop = (height - img.height) / 2, padLeft = (width - img.width) / 2
            return try crop(img, top: img.height < height ? -padTop : top, left: img.width < width ? -padLeft : left,
                            height: height, width: width)
        }
        return try crop(img, top: top, left: left, height: height, width: width)
    }

    /// Output size of `Resize(size)` with one int: the smaller edge becomes `size`, the other
    /// keeps the aspect ratio (truncated, as torchvision does).
    public static func resizedSize(height h: Int, width w: Int, smallerEdge size: Int) throws -> (height: Int, width: Int) {
        let longer = Double(size) * Double(Swift.max(h, w)) / Double(Swift.max(Swift.min(h, w), 1))
        guard longer <= Double(TF.maxImageSize) else {
            throw DataError("resize", "resizing the smaller edge of a \(h)x\(w) image to \(size) makes the other \(Int(longer)), more than \(TF.maxImageSize)")
        }
        if w <= h { return (Int(Double(size) * Double(h) / Double(w)), size) }
        return (size, Int(Double(size) * Double(w) / Double(h)))
    }

    /// Bilinear resize to `height x width` with antialiasing when downscaling
    /// (`TF.resize(..., BILINEAR, antialias=True)` on a float tensor). Same size returns the input.
    public static func resize(_ img: Image, height oh: Int, width ow: Int, antialias: Bool = true) throws -> Image {
        guard oh > 0, ow > 0, oh <= TF.maxImageSize, ow <= TF.maxImageSize else {
            throw DataError("resize", "target size must be in 1...\(TF.maxImageSize), got \(oh)x\(ow)")
        }
        let c = img.channels, h = img.height, w = img.width
        if oh == h && ow == w { return img }
        // Horizontal pass [C, H, W] -> [C, H, OW], then vertical [C, H, OW] -> [C, OH, OW].
        let outCount = try ImageShape(channels: c, height: oh, width: ow).checkedCount(op: "resize")
        let tmpCount = try ImageShape(channels: c, height: h, width: ow).checkedCount(op: "resize")
        let wx = try ResizeWeights(input: w, output: ow, antialias: antialias)
        let wy = try ResizeWeights(input: h, output: oh, antialias: antialias)
        var tmp = [Float](repeating: 0, count: tmpCount)
        var out = [Float](repeating: 0, count: outCount)
        img.pixels.withUnsafeBufferPointer { src in
          wx.weights.withUnsafeBufferPointer { wxp in
            tmp.withUnsafeMutableBufferPointer { t in
                for row in 0..<(c * h) {
                    let s = src.baseAddress! + row * w, d = t.baseAddress! + row * ow
                    for x in 0..<ow {
                        let lo = wx.start[x], ws = wxp.baseAddress! + x * wx.taps
                        var acc: Float = 0
                        for k in 0..<wx.size[x] { acc += s[lo + k] * ws[k] }
                        d[x] = acc
                    }
                }
            }
          }
          wy.weights.withUnsafeBufferPointer { wyp in
            tmp.withUnsafeBufferPointer { t in
                out.withUnsafeMutableBufferPointer { o in
                    for ch in 0..<c {
                        let tp = t.baseAddress! + ch * h * ow, op = o.baseAddress! + ch * oh * ow
                        for y in 0..<oh {
                            let lo = wy.start[y], ws = wyp.baseAddress! + y * wy.taps
                            let d = op + y * ow
                            for k in 0..<wy.size[y] {
                                let wk = ws[k], s = tp + (lo + k) * ow
                                for x in 0..<ow { d[x] += wk * s[x] }
                            }
                        }
                    }
                }
            }
          }
        }
        return Image(unchecked: ImageShape(channels: c, height: oh, width: ow), out, range: img.range)
    }

    /// Rotates by `angle` degrees counter-clockwise about the image centre, keeping the size,
    /// nearest-neighbour sampling, `fill` outside the source (`TF.rotate(img, angle, NEAREST,
    /// expand=False, center=None, fill=fill)` on a tensor).
    public static func rotate(_ img: Image, angle: Double, fill: Float = 0) throws -> Image {
        guard angle.isFinite else { throw DataError("rotate", "angle must be finite, got \(angle)") }
        let c = img.channels, h = img.height, w = img.width
        // Source offsets travel through a float mantissa (below).
        guard h * w < 1 << 23 else { throw DataError("rotate", "images of more than 2^23 pixels per channel are not supported, got \(h)x\(w)") }
        // torchvision: _get_inverse_affine_matrix(center=[0,0], angle=-angle, ...) with no shear
        // or translation reduces to [cos a, -sin a, 0; sin a, cos a, 0] (a = angle in radians),
        // cast to the image dtype (float32).
        let rot = -angle * Double.pi / 180
        let m0 = Float(cos(rot)), m1 = Float(sin(rot)), m3 = Float(-sin(rot)), m4 = Float(cos(rot))
        // _gen_affine_grid: base grid of pixel centres relative to the image centre, times
        // theta^T / [w/2, h/2], then grid_sample unnormalises ((g + 1) * size - 1) / 2.
        let hw = Float(0.5) * Float(w), hh = Float(0.5) * Float(h)
        let a = m0 / hw, b = m1 / hw, d = m3 / hh, e = m4 / hh
        let fw = Float(w), fh = Float(h)
        let plane = h * w
        // Source offset of each output pixel, `plane` when outside; shared by all channels.
        // Branch-free so it vectorises: the offset is formed as an exact float (< 2^23) and
        // read back from the mantissa after adding 2^23.
        let fplane = Float(plane)
        var source = [UInt32](repeating: 0, count: plane)
        source.withUnsafeMutableBufferPointer { sp in
            let hx = Float(w) * 0.5, hy = Float(h) * 0.5
            for y in 0..<h {
                let by = Float(y) - hy + 0.5
                let byb = by * b, bye = by * e
                let row = sp.baseAddress! + y * w
                for x in 0..<w {
                    let bx = Float(x) - hx + 0.5
                    let gx = bx * a + byb
                    let gy = bx * d + bye
                    let sx = (((gx + 1) * fw - 1) * 0.5).rounded(.toNearestOrEven)
                    let sy = (((gy + 1) * fh - 1) * 0.5).rounded(.toNearestOrEven)
                    let inside = (sx >= 0) && (sx < fw) && (sy >= 0) && (sy < fh)
                    let f = inside ? sy * fw + sx : fplane
                    row[x] = (f + 8_388_608).bitPattern & 0x7F_FFFF
                }
            }
        }
        let out = [Float](unsafeUninitializedCapacity: img.pixels.count) { dst, count in
            img.pixels.withUnsafeBufferPointer { src in
                source.withUnsafeBufferPointer { sp in
                    for ch in 0..<c {
                        let s = src.baseAddress! + ch * plane, o = dst.baseAddress! + ch * plane
                        for i in 0..<plane {
                            let k = Int(sp[i])
                            o[i] = k < plane ? s[k] : fill
                        }
                    }
                }
            }
            count = img.pixels.count
        }
        return Image(unchecked: img.shape, out, range: img.range)
    }

    // MARK: Colour
    //
    // Each adjustment has an in-place kernel (`..._`) so ColorJitter chains them on one buffer;
    // the public functions copy first.

    /// `clamp(factor * img, 0, range)` (`TF.adjust_brightness`).
    public static func adjustBrightness(_ img: Image, factor: Float) throws -> Image {
        var y = img; try adjustBrightness_(&y, factor: factor); return y
    }

    /// Blends with the mean grey level (`TF.adjust_contrast`).
    public static func adjustContrast(_ img: Image, factor: Float) throws -> Image {
        var y = img; try adjustContrast_(&y, factor: factor); return y
    }

    /// Blends with the per-pixel grey image (`TF.adjust_saturation`); a 1-channel image is returned as is.
    public static func adjustSaturation(_ img: Image, factor: Float) throws -> Image {
        var y = img; try adjustSaturation_(&y, factor: factor); return y
    }

    /// Shifts hue by `factor` turns in [-0.5, 0.5] through HSV (`TF.adjust_hue`); a 1-channel
    /// image is returned as is. Works on [0, 1] values (a range-255 image is scaled and back).
    public static func adjustHue(_ img: Image, factor: Float) throws -> Image {
        var y = img; try adjustHue_(&y, factor: factor); return y
    }

    static func adjustBrightness_(_ img: inout Image, factor: Float) throws {
        guard factor >= 0 else { throw DataError("adjust_brightness", "factor must be >= 0, got \(factor)") }
        try checkColourChannels(img, "adjust_brightness")
        let bound = img.range
        img.pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = clamp(factor * p[i], bound) }
        }
    }

    static func adjustContrast_(_ img: inout Image, factor: Float) throws {
        guard factor >= 0 else { throw DataError("adjust_contrast", "factor must be >= 0, got \(factor)") }
        try checkColourChannels(img, "adjust_contrast")
        let plane = img.height * img.width, rgb = img.channels == 3
        // Mean grey level, summed in double over 8 lanes (vectorisable; torch sums in float,
        // so the mean may differ in its last bit).
        var lanes = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        img.pixels.withUnsafeBufferPointer { p in
            let r = p.baseAddress!, g = r + (rgb ? plane : 0), b = r + (rgb ? 2 * plane : 0)
            @inline(__always) func v(_ i: Int) -> Double { Double(rgb ? gray(r[i], g[i], b[i]) : r[i]) }
            var i = 0
            while i + 8 <= plane {
                lanes.0 += v(i); lanes.1 += v(i + 1); lanes.2 += v(i + 2); lanes.3 += v(i + 3)
                lanes.4 += v(i + 4); lanes.5 += v(i + 5); lanes.6 += v(i + 6); lanes.7 += v(i + 7)
                i += 8
            }
            while i < plane { lanes.0 += v(i); i += 1 }
        }
        let sum = ((lanes.0 + lanes.1) + (lanes.2 + lanes.3)) + ((lanes.4 + lanes.5) + (lanes.6 + lanes.7))
        let mean = Float(sum / Double(plane))
        let bound = img.range, rest = (1 - factor) * mean
        img.pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = clamp(factor * p[i] + rest, bound) }
        }
    }

    static func adjustSaturation_(_ img: inout Image, factor: Float) throws {
        guard factor >= 0 else { throw DataError("adjust_saturation", "factor must be >= 0, got \(factor)") }
        try checkColourChannels(img, "adjust_saturation")
        if img.channels == 1 { return }
        let plane = img.height * img.width, bound = img.range, rest = 1 - factor
        img.pixels.withUnsafeMutableBufferPointer { p in
            let r = p.baseAddress!, g = r + plane, b = r + 2 * plane
            for i in 0..<plane {
                let l = rest * gray(r[i], g[i], b[i])
                r[i] = clamp(factor * r[i] + l, bound)
                g[i] = clamp(factor * g[i] + l, bound)
                b[i] = clamp(factor * b[i] + l, bound)
            }
        }
    }

    static func adjustHue_(_ img: inout Image, factor: Float) throws {
        guard factor >= -0.5 && factor <= 0.5 else { throw DataError("adjust_hue", "factor must be in [-0.5, 0.5], got \(factor)") }
        try checkColourChannels(img, "adjust_hue")
        if img.channels == 1 { return }
        let plane = img.height * img.width
        let scale = img.range, inv = 1 / img.range
        img.pixels.withUnsafeMutableBufferPointer { p in
            let pr = p.baseAddress!, pg = pr + plane, pb = pr + 2 * plane
            for i in 0..<plane {
                var r = pr[i], g = pg[i], b = pb[i]
                if scale != 1 { r *= inv; g *= inv; b *= inv }
                // _rgb2hsv
                let maxc = max(r, max(g, b)), minc = min(r, min(g, b))
                let eqc = maxc == minc
                let cr = maxc - minc
                let s = cr / (eqc ? 1 : maxc)
                let crd: Float = eqc ? 1 : cr
                let rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd
                let hr: Float = maxc == r ? bc - gc : 0
                let hg: Float = (maxc == g && maxc != r) ? 2 + rc - bc : 0
                let hb: Float = (maxc != g && maxc != r) ? 4 + gc - rc : 0
                var h = fmodf((hr + hg + hb) / 6 + 1, 1)
                // (h + factor) % 1.0 with Python's sign convention.
                h = h + factor
                h = h - floorf(h)
                // _hsv2rgb
                let v = maxc
                let fi = floorf(h * 6)
                let f = h * 6 - fi
                var k = Int(fi) % 6
                if k < 0 { k += 6 }
                let pp = min(max(v * (1 - s), 0), 1)
                let q = min(max(v * (1 - s * f), 0), 1)
                let t = min(max(v * (1 - s * (1 - f)), 0), 1)
                var rr: Float, gg: Float, bb: Float
                switch k {
                case 0: rr = v; gg = t; bb = pp
                case 1: rr = q; gg = v; bb = pp
                case 2: rr = pp; gg = v; bb = t
                case 3: rr = pp; gg = q; bb = v
                case 4: rr = t; gg = pp; bb = v
                default: rr = v; gg = pp; bb = q
                }
                if scale != 1 { rr *= scale; gg *= scale; bb *= scale }
                pr[i] = rr; pg[i] = gg; pb[i] = bb
            }
        }
    }

    /// Grey image `0.2989 R + 0.587 G + 0.114 B` with 1 or 3 (repeated) channels
    /// (`TF.rgb_to_grayscale`); a 1-channel image is returned as is, as torchvision does.
    public static func rgbToGrayscale(_ img: Image, outputChannels: Int = 1) throws -> Image {
        guard outputChannels == 1 || outputChannels == 3 else {
            throw DataError("rgb_to_grayscale", "output channels must be 1 or 3, got \(outputChannels)")
        }
        try checkColourChannels(img, "rgb_to_grayscale")
        if img.channels == 1 { return img }
        let plane = img.height * img.width
        var l = [Float](repeating: 0, count: plane)
        img.pixels.withUnsafeBufferPointer { p in
            for i in 0..<plane { l[i] = gray(p[i], p[plane + i], p[2 * plane + i]) }
        }
        let out = outputChannels == 1 ? l : l + l + l
        return Image(unchecked: ImageShape(channels: outputChannels, height: img.height, width: img.width), out, range: img.range)
    }

    // MARK: Value range

    /// Scales a range-255 image to [0, 1] (`ToTensor` / `ToDtype(float32, scale=True)`);
    /// an image already in [0, 1] is returned as is.
    public static func toFloat(_ img: Image) -> Image {
        if img.range == 1 { return img }
        let r = img.range   // divide (not multiply by 1/255) to round exactly like x / 255 in torch
        var y = mapValues(img) { src, dst, n in
            for i in 0..<n { dst[i] = src[i] / r }
        }
        y.range = 1
        return y
    }

    /// `(x - mean[c]) / std[c]` per channel (`TF.normalize`), after scaling to [0, 1].
    public static func normalize(_ img: Image, mean: [Float], std: [Float]) throws -> Image {
        let c = img.channels
        guard mean.count == c || mean.count == 1, std.count == c || std.count == 1 else {
            throw DataError("normalize", "mean (\(mean.count)) and std (\(std.count)) need 1 or \(c) values")
        }
        for s in std where s == 0 { throw DataError("normalize", "std evaluated to zero, leading to division by zero") }
        let x = toFloat(img)
        let plane = img.height * img.width
        var out = x.pixels
        for ch in 0..<c {
            let m = mean.count == 1 ? mean[0] : mean[ch], s = std.count == 1 ? std[0] : std[ch]
            for i in (ch * plane)..<((ch + 1) * plane) { out[i] = (out[i] - m) / s }
        }
        return Image(unchecked: img.shape, out, range: 1)
    }

    // MARK: Helpers

    /// A new image of the same shape whose values `body(src, dst, count)` writes.
    @inline(__always) static func mapValues(_ img: Image, _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Image {
        let n = img.pixels.count
        let out = [Float](unsafeUninitializedCapacity: n) { dst, count in
            img.pixels.withUnsafeBufferPointer { src in body(src.baseAddress!, dst.baseAddress!, n) }
            count = n
        }
        return Image(unchecked: img.shape, out, range: img.range)
    }

    /// `min(max(x, 0), hi)` without NaN handling, so loops vectorise.
    @inline(__always) static func clamp(_ x: Float, _ hi: Float) -> Float { x < 0 ? 0 : (x > hi ? hi : x) }

    /// torchvision's rgb_to_grayscale weights.
    @inline(__always) static func gray(_ r: Float, _ g: Float, _ b: Float) -> Float {
        0.2989 * r + 0.587 * g + 0.114 * b
    }

    static func checkColourChannels(_ img: Image, _ op: String) throws {
        guard img.channels == 1 || img.channels == 3 else {
            throw DataError(op, "expects 1 or 3 channels, got \(img.channels)")
        }
    }
}

/// Separable resize weights for one axis, as aten's antialiased bilinear kernel builds them:
/// output i is centred at `scale * (i + 0.5)` in input coordinates; the triangle filter is
/// stretched by `scale` when downscaling with antialias (support = scale), else support 1;
/// taps are the inputs within the support, weights normalised to sum to 1.
struct ResizeWeights {
    /// Weights stored per output: `taps` slots, the first `size[i]` used.
    let taps: Int
    let start: [Int]
    let size: [Int]
    let weights: [Float]

    init(input: Int, output: Int, antialias: Bool) throws {
        let scale = Double(input) / Double(output)
        let stretch = antialias && scale >= 1
        let support = stretch ? scale : 1.0
        let invscale = stretch ? 1 / scale : 1.0
        let taps = Int(ceil(support)) * 2 + 1
        let (slots, overflow) = output.multipliedReportingOverflow(by: taps)
        guard !overflow else { throw DataError("resize", "\(input) -> \(output) pixels needs too many filter weights") }
        try MemoryLimit.check(count: slots, elementSize: MemoryLayout<Float>.stride + MemoryLayout<Int>.stride, op: "resize")
        var start = [Int](repeating: 0, count: output), size = [Int](repeating: 0, count: output)
        var w = [Float](repeating: 0, count: output * taps)
        var ws = [Double](repeating: 0, count: taps + 2)
        for i in 0..<output {
            let center = scale * (Double(i) + 0.5)
            let lo = max(Int(center - support + 0.5), 0)     // Int() truncates like aten's int64_t cast
            let n = min(min(Int(center + support + 0.5), input) - lo, taps)
            var total = 0.0
            for j in 0..<n {
                let x = (Double(j + lo) - center + 0.5) * invscale
                ws[j] = max(0, 1 - abs(x))
                total += ws[j]
            }
            start[i] = lo
            size[i] = n
            for j in 0..<n { w[i * taps + j] = Float(total != 0 ? ws[j] / total : 0) }
        }
        self.taps = taps
        self.start = start
        self.size = size
        self.weights = w
    }
}

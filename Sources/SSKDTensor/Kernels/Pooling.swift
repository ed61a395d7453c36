// 2-D pooling over the last two dims of [N, C, H, W] (or [C, H, W]); every (n, c) plane is
// independent, so kernels run over P = N*C planes in parallel.
//
// Shapes:
//   x [P, H, W] -> y [P, OH, OW]
//   max_pool2d:  OH = floor-or-ceil((H + 2*ph - dh*(kh-1) - 1) / sh) + 1, dropping a last window
//                that would start inside the right/bottom padding (PyTorch's rule); `indices`
//                [P, OH, OW] hold each maximum's flat offset within its input plane.
//   avg_pool2d:  same size formula without dilation; divisor = window area clipped to the padded
//                input (count_include_pad) or to the input itself.
//   adaptive_avg_pool2d: window of output row i spans rows floor(i*H/OH) ..< ceil((i+1)*H/OH).

/// PyTorch's `pooling_output_shape`.
func poolOutputSize(_ size: Int, kernel: Int, pad: Int, stride: Int, dilation: Int, ceilMode: Bool) -> Int {
    let span = size + 2 * pad - dilation * (kernel - 1) - 1 + (ceilMode ? stride - 1 : 0)
    // Floor division (span may be negative for a too-small input).
    var out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1
    if ceilMode && (out - 1) * stride >= size + pad { out -= 1 }
    return out
}

/// Validated geometry of a max / avg pool call.
struct PoolGeometry {
    var planes, h, w, oh, ow: Int
    var kh, kw, sh, sw, ph, pw, dh, dw: Int
    var outShape: [Int]

    init(op: String, input: [Int], kernel: [Int], stride: [Int]?, padding: [Int], dilation: [Int], ceilMode: Bool) throws {
        guard input.count == 3 || input.count == 4 else { throw TensorError(op, "expected a 3-D or 4-D input, got shape \(fmt(input))") }
        (kh, kw) = try pair(kernel, "kernel size", op: op, minimum: 1)
        let (k0, k1) = (kh, kw)
        if let stride, !stride.isEmpty { (sh, sw) = try pair(stride, "stride", op: op, minimum: 1) } else { (sh, sw) = (k0, k1) }
        (ph, pw) = try pair(padding, "padding", op: op, minimum: 0)
        (dh, dw) = try pair(dilation, "dilation", op: op, minimum: 1)
        guard ph <= (dh * (kh - 1) + 1) / 2 && pw <= (dw * (kw - 1) + 1) / 2 else {
            throw TensorError(op, "padding \(padding) should be at most half of the effective kernel size \(kernel)")
        }
        let r = input.count
        h = input[r - 2]; w = input[r - 1]
        planes = input.dropLast(2).reduce(1, *)
        oh = poolOutputSize(h, kernel: kh, pad: ph, stride: sh, dilation: dh, ceilMode: ceilMode)
        ow = poolOutputSize(w, kernel: kw, pad: pw, stride: sw, dilation: dw, ceilMode: ceilMode)
        guard oh >= 1 && ow >= 1 else {
            throw TensorError(op, "output size is too small (\(oh)x\(ow)) for input \(fmt(input)), kernel \(kernel), padding \(padding)")
        }
        outShape = Array(input.dropLast(2)) + [oh, ow]
    }
}

// MARK: - max_pool2d

func maxPool2dForward(out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>, input: UnsafePointer<Float>, _ g: PoolGeometry) {
    parallelFor(g.planes, grain: grainFor(work: g.oh * g.ow * g.kh * g.kw)) { planes in
        for p in planes {
            let x = input + p * g.h * g.w, y = out + p * g.oh * g.ow, ix = indices + p * g.oh * g.ow
            for r in 0..<g.oh {
                var h0 = r * g.sh - g.ph
                while h0 < 0 { h0 += g.dh }
                let h1 = Swift.min(r * g.sh - g.ph + (g.kh - 1) * g.dh + 1, g.h)
                for q in 0..<g.ow {
                    var w0 = q * g.sw - g.pw
                    while w0 < 0 { w0 += g.dw }
                    let w1 = Swift.min(q * g.sw - g.pw + (g.kw - 1) * g.dw + 1, g.w)
                    var best = -Float.infinity, at = h0 * g.w + w0
                    var ih = h0
                    while ih < h1 {
                        var iw = w0
                        while iw < w1 {
                            let v = x[ih * g.w + iw]
                            // NaN propagates (the first NaN wins), as in PyTorch.
                            if v > best || v.isNaN { best = v; at = ih * g.w + iw; if v.isNaN { ih = h1; break } }
                            iw += g.dw
                        }
                        ih += g.dh
                    }
                    y[r * g.ow + q] = best
                    ix[r * g.ow + q] = Int32(at)
                }
            }
        }
    }
}

func maxPool2dBackward(dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, indices: UnsafePointer<Int32>, _ g: PoolGeometry) {
    dinput.update(repeating: 0, count: g.planes * g.h * g.w)
    parallelFor(g.planes, grain: grainFor(work: g.oh * g.ow)) { planes in
        for p in planes {
            let dx = dinput + p * g.h * g.w, dy = dout + p * g.oh * g.ow, ix = indices + p * g.oh * g.ow
            for e in 0..<(g.oh * g.ow) { dx[Int(ix[e])] += dy[e] }
        }
    }
}

// MARK: - avg_pool2d

/// The window of output (r, q) clipped to the input, and its divisor.
@inline(__always) func avgWindow(_ r: Int, _ q: Int, _ g: PoolGeometry, countIncludePad: Bool) -> (Int, Int, Int, Int, Float) {
    var h0 = r * g.sh - g.ph, w0 = q * g.sw - g.pw
    var h1 = Swift.min(h0 + g.kh, g.h + g.ph), w1 = Swift.min(w0 + g.kw, g.w + g.pw)
    let padded = (h1 - h0) * (w1 - w0)
    h0 = Swift.max(h0, 0); w0 = Swift.max(w0, 0)
    h1 = Swift.min(h1, g.h); w1 = Swift.min(w1, g.w)
    let inside = Swift.max(h1 - h0, 0) * Swift.max(w1 - w0, 0)
    return (h0, h1, w0, w1, Float(countIncludePad ? padded : inside))
}

func avgPool2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, _ g: PoolGeometry, countIncludePad: Bool) {
    parallelFor(g.planes, grain: grainFor(work: g.oh * g.ow * g.kh * g.kw)) { planes in
        for p in planes {
            let x = input + p * g.h * g.w, y = out + p * g.oh * g.ow
            for r in 0..<g.oh {
                for q in 0..<g.ow {
                    let (h0, h1, w0, w1, div) = avgWindow(r, q, g, countIncludePad: countIncludePad)
                    var s: Float = 0
                    if h0 < h1 && w0 < w1 { for ih in h0..<h1 { for iw in w0..<w1 { s += x[ih * g.w + iw] } } }
                    y[r * g.ow + q] = h0 < h1 && w0 < w1 ? s / div : 0
                }
            }
        }
    }
}

func avgPool2dBackward(dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, _ g: PoolGeometry, countIncludePad: Bool) {
    dinput.update(repeating: 0, count: g.planes * g.h * g.w)
    parallelFor(g.planes, grain: grainFor(work: g.oh * g.ow * g.kh * g.kw)) { planes in
        for p in planes {
            let dx = dinput + p * g.h * g.w, dy = dout + p * g.oh * g.ow
            for r in 0..<g.oh {
                for q in 0..<g.ow {
                    let (h0, h1, w0, w1, div) = avgWindow(r, q, g, countIncludePad: countIncludePad)
                    guard h0 < h1 && w0 < w1 else { continue }
                    let v = dy[r * g.ow + q] / div
                    for ih in h0..<h1 { for iw in w0..<w1 { dx[ih * g.w + iw] += v } }
                }
            }
        }
    }
}

// MARK: - adaptive_avg_pool2d

/// Sum of `count` (>= 8) floats at `x` as 8 lane partials: four independent chains for long rows,
/// and a ragged tail read as the LAST 8 floats with the lanes already counted masked out.
@inline(__always) func lanePartials(_ x: UnsafePointer<Float>, count: Int) -> SIMD8<Float> {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var i = 0
    while i + 32 <= count {
        a0 += load8(x + i); a1 += load8(x + i + 8); a2 += load8(x + i + 16); a3 += load8(x + i + 24)
        i += 32
    }
    while i + 8 <= count { a0 += load8(x + i); i += 8 }
    if i < count {
        a1 += keepLast(load8(x + count - 8), count - i)
    }
    return (a0 + a1) + (a2 + a3)
}

@inline(__always) func adaptiveStart(_ i: Int, _ out: Int, _ size: Int) -> Int { (i * size) / out }
@inline(__always) func adaptiveEnd(_ i: Int, _ out: Int, _ size: Int) -> Int { ((i + 1) * size + out - 1) / out }

func adaptiveAvgPool2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, planes: Int, h: Int, w: Int, oh: Int, ow: Int) {
    let hw = h * w
    if oh == 1 && ow == 1 && hw >= 16 {
        // Global average pooling (squeeze-and-excitation, classifier heads): each plane reduces to
        // 8 lane partials, and eight planes at a time finish with one 8x8 transpose and 7 vector
        // adds (instead of a horizontal sum per plane). A leftover plane adds its lanes in the
        // same order, so every plane's result is the same whichever way it went.
        let inv = 1 / Float(hw)
        parallelFor(planes, grain: grainFor(work: hw)) { ps in
            let m = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 8)
            defer { m.deallocate() }
            var p = ps.lowerBound
            while p + 8 <= ps.upperBound {
                for j in 0..<8 { m[j] = lanePartials(input + (p + j) * hw, count: hw) }
                transpose8x8(m)
                let s = ((m[0] + m[1]) + m[2]) + m[3] + m[4] + m[5] + m[6] + m[7]
                store8(s * inv, out + p)
                p += 8
            }
            while p < ps.upperBound {
                let v = lanePartials(input + p * hw, count: hw)
                var s = v[0]
                for l in 1..<8 { s += v[l] }
                out[p] = s * inv
                p += 1
            }
        }
        return
    }
    if oh == 1 && ow == 1 {
        // Tiny planes (3x3 maps): one vector and a few scalars each; a transpose would cost more.
        parallelFor(planes, grain: grainFor(work: hw)) { ps in
            for p in ps {
                let x = input + p * hw
                var acc = SIMD8<Float>(), i = 0
                while i + 8 <= hw { acc += load8(x + i); i += 8 }
                var s = acc.sum()
                while i < hw { s += x[i]; i += 1 }
                out[p] = s / Float(hw)
            }
        }
        return
    }
    parallelFor(planes, grain: grainFor(work: hw)) { ps in
        for p in ps {
            let x = input + p * hw, y = out + p * oh * ow
            for r in 0..<oh {
                let h0 = adaptiveStart(r, oh, h), h1 = adaptiveEnd(r, oh, h)
                for q in 0..<ow {
                    let w0 = adaptiveStart(q, ow, w), w1 = adaptiveEnd(q, ow, w)
                    var s: Float = 0
                    for ih in h0..<h1 { for iw in w0..<w1 { s += x[ih * w + iw] } }
                    y[r * ow + q] = s / Float((h1 - h0) * (w1 - w0))
                }
            }
        }
    }
}

func adaptiveAvgPool2dBackward(dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, planes: Int, h: Int, w: Int, oh: Int, ow: Int) {
    let hw = h * w
    if oh == 1 && ow == 1 {
        parallelFor(planes, grain: grainFor(work: hw)) { ps in
            for p in ps { (dinput + p * hw).update(repeating: dout[p] / Float(hw), count: hw) }
        }
        return
    }
    dinput.update(repeating: 0, count: planes * hw)
    parallelFor(planes, grain: grainFor(work: hw)) { ps in
        for p in ps {
            let dx = dinput + p * hw, dy = dout + p * oh * ow
            for r in 0..<oh {
                let h0 = adaptiveStart(r, oh, h), h1 = adaptiveEnd(r, oh, h)
                for q in 0..<ow {
                    let w0 = adaptiveStart(q, ow, w), w1 = adaptiveEnd(q, ow, w)
                    let v = dy[r * ow + q] / Float((h1 - h0) * (w1 - w0))
                    for ih in h0..<h1 { for iw in w0..<w1 { dx[ih * w + iw] += v } }
                }
            }
        }
    }
}

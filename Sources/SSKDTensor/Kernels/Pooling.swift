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
//
// Without dilation (every avg pool, most max pools) the kernels are separable: per plane a
// horizontal pass over the input rows fills a per-task [H, OW] buffer, and a vertical pass over
// its rows gives y [OH, OW]; avg-pool backward gathers dx [H, W] row by row from dy / divisor.

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

// MARK: - Separable windows
//
// Without dilation a window is a row range times a column range, so both pools run in two passes
// per plane: a horizontal pass reduces each input row over every output column's window into a
// [H, OW] buffer (once per row, although overlapping windows share rows), and a vertical pass
// reduces each output row's clipped rows of that buffer. Output columns whose window lies inside
// the row run 8 at a time: with stride 2, 16 consecutive floats split into even and odd columns
// (`evenHalf` / `oddHalf`, one shuffle each); with stride 1 a window offset is one unaligned load.
// Edge columns (clipped windows) and other strides take the scalar loop.

@inline(__always) private func load8i(_ p: UnsafePointer<Int32>) -> SIMD8<Int32> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Int32>.self)
}

@inline(__always) private func store8i(_ v: SIMD8<Int32>, _ p: UnsafeMutablePointer<Int32>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Int32>.self)
}

/// Floor division for a positive divisor.
@inline(__always) private func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }

/// Output columns q whose whole window lies in the row and whose SIMD loads stay in it, when the
/// stride is 1 or 2 and there are at least 8 of them; otherwise an empty range at `ow` (so the
/// scalar loops over `0 ..< lowerBound` and `upperBound ..< ow` cover every column).
/// With stride 2 a block starting at window column c reads columns c ..< c + 16 (even / odd
/// halves) and c + j - 1 ..< c + j + 15 for offsets j >= 2: all <= the last lane's window end,
/// plus one for a kernel 1.
func poolVectorColumns(_ g: PoolGeometry) -> Range<Int> {
    let none = g.ow..<g.ow
    guard g.dw == 1 && (g.sw == 1 || g.sw == 2) else { return none }
    let lo = (g.pw + g.sw - 1) / g.sw
    let span = g.sw == 2 ? Swift.max(g.kw, 2) : g.kw
    let hi = Swift.min(floorDiv(g.w - span + g.pw, g.sw), g.ow - 1)
    return hi - lo + 1 >= 8 ? lo..<(hi + 1) : none
}

/// Input rows (or columns) [lo, hi) of window `o` along one axis, clipped to the input.
@inline(__always) private func clippedWindow(_ o: Int, kernel: Int, stride: Int, pad: Int, size: Int) -> (Int, Int) {
    let start = o * stride - pad
    return (Swift.max(start, 0), Swift.min(start + kernel, size))
}

/// Windows [lo, hi) along one axis that cover input position `i` (PyTorch's windows: window o
/// spans o*stride - pad ..< o*stride - pad + kernel); lo == hi when none does.
@inline(__always) private func coveringWindows(_ i: Int, kernel: Int, stride: Int, pad: Int, count: Int) -> (Int, Int) {
    let first = i + pad - kernel + 1
    let lo = first <= 0 ? 0 : (first + stride - 1) / stride
    let hi = Swift.min((i + pad) / stride + 1, count)
    return (lo, Swift.max(lo, hi))
}

// MARK: - max_pool2d

/// Whether `v` replaces `best` when scanning a window in order: a larger value, or the first NaN
/// (a NaN, once found, is never replaced). Ties keep the earlier element.
@inline(__always) private func beats(_ v: Float, _ best: Float) -> Bool { !(v <= best) && best == best }

@inline(__always) private func beats(_ v: SIMD8<Float>, _ best: SIMD8<Float>) -> SIMDMask<SIMD8<Int32>> {
    .!(v .<= best) .& (best .== best)
}

/// Max pooling forward (values and argmax offsets). Windows without dilation take the separable
/// path; dilated ones the direct scan.
func maxPool2dForward(out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>, input: UnsafePointer<Float>, _ g: PoolGeometry) {
    if g.dh == 1 && g.dw == 1 {
        maxPool2dForwardSeparable(out: out, indices: indices, input: input, g)
    } else {
        maxPool2dForwardDirect(out: out, indices: indices, input: input, g)
    }
}

/// One input row reduced over each output column's window: the first maximum (or first NaN) in
/// `v[q]` and its column in `at[q]`.
@inline(__always) private func maxPoolRow(_ x: UnsafePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ at: UnsafeMutablePointer<Int32>,
                                          _ g: PoolGeometry, _ vec: Range<Int>) {
    @inline(__always) func scalar(_ q: Int) {
        let (w0, w1) = clippedWindow(q, kernel: g.kw, stride: g.sw, pad: g.pw, size: g.w)
        var best = x[w0], col = w0
        var iw = w0 + 1
        while iw < w1 {
            if beats(x[iw], best) { best = x[iw]; col = iw }
            iw += 1
        }
        v[q] = best; at[q] = Int32(col)
    }
    for q in 0..<vec.lowerBound { scalar(q) }
    if !vec.isEmpty {
        if g.sw == 2 {
            forEachBlock(vec, width: 8) { q in
                let c = q * 2 - g.pw
                let cols = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14) &+ Int32(c)
                let pair = load16(x + c)
                var best = pair.evenHalf, col = cols
                var j = 1
                while j < g.kw {
                    let t = j == 1 ? pair.oddHalf : load16(x + c + j - 1).oddHalf
                    let m = beats(t, best)
                    best.replace(with: t, where: m)
                    col.replace(with: cols &+ Int32(j), where: m)
                    j += 1
                }
                store8(best, v + q); store8i(col, at + q)
            }
        } else {
            forEachBlock(vec, width: 8) { q in
                let c = q - g.pw
                let cols = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) &+ Int32(c)
                var best = load8(x + c), col = cols
                var j = 1
                while j < g.kw {
                    let t = load8(x + c + j)
                    let m = beats(t, best)
                    best.replace(with: t, where: m)
                    col.replace(with: cols &+ Int32(j), where: m)
                    j += 1
                }
                store8(best, v + q); store8i(col, at + q)
            }
        }
    }
    for q in vec.upperBound..<g.ow { scalar(q) }
}

/// Horizontal pass into `hv` / `hat` ([H, OW]: row maxima and their columns), then for each
/// output row a vertical scan of its rows in order: scanning rows first and columns within a row
/// is the window's row-major order, so the first maximum / first NaN is PyTorch's.
func maxPool2dForwardSeparable(out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>, input: UnsafePointer<Float>,
                               _ g: PoolGeometry) {
    let vec = poolVectorColumns(g)
    parallelFor(g.planes, grain: grainFor(work: g.h * g.w)) { planes in
        let hv = UnsafeMutablePointer<Float>.allocate(capacity: g.h * g.ow)
        let hat = UnsafeMutablePointer<Int32>.allocate(capacity: g.h * g.ow)
        defer { hv.deallocate(); hat.deallocate() }
        for p in planes {
            let x = input + p * g.h * g.w, y = out + p * g.oh * g.ow, ix = indices + p * g.oh * g.ow
            var ready = 0                          // rows below this are in the buffer (windows move down)
            for r in 0..<g.oh {
                let (h0, h1) = clippedWindow(r, kernel: g.kh, stride: g.sh, pad: g.ph, size: g.h)
                for ih in Swift.max(h0, ready)..<Swift.max(h1, h0, ready) {
                    maxPoolRow(x + ih * g.w, hv + ih * g.ow, hat + ih * g.ow, g, vec)
                }
                ready = Swift.max(ready, h1)
                let yr = y + r * g.ow, ir = ix + r * g.ow
                if g.ow >= 8 {
                    forEachBlock(0..<g.ow, width: 8) { q in
                        var best = load8(hv + h0 * g.ow + q), at = load8i(hat + h0 * g.ow + q) &+ Int32(h0 * g.w)
                        var ih = h0 + 1
                        while ih < h1 {
                            let t = load8(hv + ih * g.ow + q)
                            let m = beats(t, best)
                            best.replace(with: t, where: m)
                            at.replace(with: load8i(hat + ih * g.ow + q) &+ Int32(ih * g.w), where: m)
                            ih += 1
                        }
                        store8(best, yr + q); store8i(at, ir + q)
                    }
                } else {
                    for q in 0..<g.ow {
                        var best = hv[h0 * g.ow + q], at = Int(hat[h0 * g.ow + q]) + h0 * g.w
                        for ih in (h0 + 1)..<Swift.max(h1, h0 + 1) where beats(hv[ih * g.ow + q], best) {
                            best = hv[ih * g.ow + q]; at = Int(hat[ih * g.ow + q]) + ih * g.w
                        }
                        yr[q] = best; ir[q] = Int32(at)
                    }
                }
            }
        }
    }
}

/// The direct scan of each (possibly dilated) window, in row-major order.
func maxPool2dForwardDirect(out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>, input: UnsafePointer<Float>, _ g: PoolGeometry) {
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

/// Zeroes `count` floats with 8-wide stores (the last one overlapping). For plane-sized blocks
/// (a few KB) this measured ~10-20% faster than the `memset` call a zeroing loop compiles to.
@inline(__always) private func zeroFill(_ p: UnsafeMutablePointer<Float>, count: Int) {
    guard count >= 8 else { p.update(repeating: 0, count: count); return }
    var i = 0
    while i + 8 <= count { store8(SIMD8<Float>(), p + i); i += 8 }
    if i < count { store8(SIMD8<Float>(), p + count - 8) }
}

/// Each plane of `dinput` is zeroed and receives its scatter while it is in cache (one pass over
/// the gradient instead of a memset of everything followed by the scatter). The zeroing of the
/// next plane is interleaved with the scatter, a slice after each output row, so its cache misses
/// overlap the scatter's work instead of stalling the stores in a burst (~10% faster). The
/// scatter order (row-major over the windows) is unchanged.
func maxPool2dBackward(dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, indices: UnsafePointer<Int32>, _ g: PoolGeometry) {
    let hw = g.h * g.w, ohw = g.oh * g.ow
    let slice = (hw + g.oh - 1) / g.oh             // floats of the next plane zeroed per output row
    parallelFor(g.planes, grain: grainFor(work: hw)) { planes in
        zeroFill(dinput + planes.lowerBound * hw, count: hw)
        for p in planes {
            let dx = dinput + p * hw, dy = dout + p * ohw, ix = indices + p * ohw
            let next = p + 1 < planes.upperBound ? dinput + (p + 1) * hw : nil
            for r in 0..<g.oh {
                for e in (r * g.ow)..<((r + 1) * g.ow) { dx[Int(ix[e])] += dy[e] }
                if let next, r * slice < hw { zeroFill(next + r * slice, count: Swift.min(slice, hw - r * slice)) }
            }
        }
    }
}

// MARK: - avg_pool2d

/// Divisor factor of every window along one axis: its length within the padded input
/// (countIncludePad) or within the input. A window with nothing inside the input gets 1: its sum
/// is 0 and so is its average (PyTorch's empty-window result) instead of 0 / 0.
func avgDivisors(count: Int, kernel: Int, stride: Int, pad: Int, size: Int, countIncludePad: Bool) -> [Float] {
    (0..<count).map { o in
        let start = o * stride - pad
        let end = Swift.min(start + kernel, size + pad)
        let inside = Swift.max(Swift.min(end, size) - Swift.max(start, 0), 0)
        return inside == 0 ? 1 : Float(countIncludePad ? end - start : inside)
    }
}

/// One input row summed over each output column's window (in column order).
@inline(__always) private func sumPoolRow(_ x: UnsafePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ g: PoolGeometry, _ vec: Range<Int>) {
    @inline(__always) func scalar(_ q: Int) {
        let (w0, w1) = clippedWindow(q, kernel: g.kw, stride: g.sw, pad: g.pw, size: g.w)
        var s: Float = 0
        var iw = w0
        while iw < w1 { s += x[iw]; iw += 1 }
        v[q] = s
    }
    for q in 0..<vec.lowerBound { scalar(q) }
    if !vec.isEmpty {
        if g.sw == 2 {
            forEachBlock(vec, width: 8) { q in
                let c = q * 2 - g.pw
                let pair = load16(x + c)
                var s = pair.evenHalf
                if g.kw > 1 { s += pair.oddHalf }
                var j = 2
                while j < g.kw { s += load16(x + c + j - 1).oddHalf; j += 1 }
                store8(s, v + q)
            }
        } else {
            forEachBlock(vec, width: 8) { q in
                let c = q - g.pw
                var s = load8(x + c)
                var j = 1
                while j < g.kw { s += load8(x + c + j); j += 1 }
                store8(s, v + q)
            }
        }
    }
    for q in vec.upperBound..<g.ow { scalar(q) }
}

/// Horizontal sums into an [H, OW] buffer, then each output row sums its rows and divides by
/// rowDivisor * columnDivisor (the window's clipped area, exactly as a Float).
func avgPool2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, _ g: PoolGeometry, countIncludePad: Bool) {
    let vec = poolVectorColumns(g)
    let rowDiv = avgDivisors(count: g.oh, kernel: g.kh, stride: g.sh, pad: g.ph, size: g.h, countIncludePad: countIncludePad)
    let colDiv = avgDivisors(count: g.ow, kernel: g.kw, stride: g.sw, pad: g.pw, size: g.w, countIncludePad: countIncludePad)
    colDiv.withUnsafeBufferPointer { colDiv in
        let cd = colDiv.baseAddress!
        parallelFor(g.planes, grain: grainFor(work: g.h * g.w)) { planes in
            let hv = UnsafeMutablePointer<Float>.allocate(capacity: g.h * g.ow)
            defer { hv.deallocate() }
            for p in planes {
                let x = input + p * g.h * g.w, y = out + p * g.oh * g.ow
                var ready = 0
                for r in 0..<g.oh {
                    let (h0, h1) = clippedWindow(r, kernel: g.kh, stride: g.sh, pad: g.ph, size: g.h)
                    for ih in Swift.max(h0, ready)..<Swift.max(h1, h0, ready) { sumPoolRow(x + ih * g.w, hv + ih * g.ow, g, vec) }
                    ready = Swift.max(ready, h1)
                    let yr = y + r * g.ow, rd = rowDiv[r]
                    if g.ow >= 8 {
                        forEachBlock(0..<g.ow, width: 8) { q in
                            var s = SIMD8<Float>()
                            var ih = h0
                            while ih < h1 { s += load8(hv + ih * g.ow + q); ih += 1 }
                            store8(s / (rd * load8(cd + q)), yr + q)
                        }
                    } else {
                        for q in 0..<g.ow {
                            var s: Float = 0
                            var ih = h0
                            while ih < h1 { s += hv[ih * g.ow + q]; ih += 1 }
                            yr[q] = s / (rd * cd[q])
                        }
                    }
                }
            }
        }
    }
}

/// Gather form, so each input pixel is written once (no memset, no read-modify-write):
/// dx[ih, iw] = sum of dy[r, q] / divisor[r, q] over the windows covering it. Per plane: the
/// scaled gradient g = dy / divisor, then per input row t[q] = sum of g[r, q] over the output rows
/// covering it, then dx[ih, iw] = sum of t[q] over the output columns covering iw. Interior
/// columns run 8 (stride 1) or 16 (stride 2: even and odd columns, then interleaved) at a time.
func avgPool2dBackward(dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, _ g: PoolGeometry, countIncludePad: Bool) {
    let rowDiv = avgDivisors(count: g.oh, kernel: g.kh, stride: g.sh, pad: g.ph, size: g.h, countIncludePad: countIncludePad)
    let colDiv = avgDivisors(count: g.ow, kernel: g.kw, stride: g.sw, pad: g.pw, size: g.w, countIncludePad: countIncludePad)
    let rowCover = (0..<g.h).map { coveringWindows($0, kernel: g.kh, stride: g.sh, pad: g.ph, count: g.oh) }
    let colCover = (0..<g.w).map { coveringWindows($0, kernel: g.kw, stride: g.sw, pad: g.pw, count: g.ow) }
    // Interior blocks (see `avgPoolGatherRow`): the first and last block start, as an output
    // column for stride 2 and an input column for stride 1; empty when the row is too short.
    var blocks = 0..<0
    if g.sw == 2 && g.w + g.pw >= 16 && g.ow >= 8 {
        let lo = Swift.max((g.pw + 1) / 2, (g.kw - 1) / 2), hi = Swift.min((g.w - 16 + g.pw) / 2, g.ow - 8)
        if lo <= hi { blocks = lo..<(hi + 8) }
    } else if g.sw == 1 && g.w >= 8 {
        let lo = Swift.max(0, g.kw - 1 - g.pw), hi = Swift.min(g.w - 8, g.ow - 8 - g.pw)
        if lo <= hi { blocks = lo..<(hi + 8) }
    }
    let vecCols = blocks.isEmpty ? 0..<0 : (g.sw == 2 ? (2 * blocks.lowerBound - g.pw)..<(2 * blocks.upperBound - g.pw) : blocks)
    colDiv.withUnsafeBufferPointer { colDiv in
        let cd = colDiv.baseAddress!
        parallelFor(g.planes, grain: grainFor(work: g.h * g.w)) { planes in
            let gs = UnsafeMutablePointer<Float>.allocate(capacity: g.oh * g.ow)
            let t = UnsafeMutablePointer<Float>.allocate(capacity: g.ow)
            defer { gs.deallocate(); t.deallocate() }
            for p in planes {
                let dx = dinput + p * g.h * g.w, dy = dout + p * g.oh * g.ow
                for r in 0..<g.oh {
                    let rd = rowDiv[r], d = dy + r * g.ow, o = gs + r * g.ow
                    if g.ow >= 8 {
                        forEachBlock(0..<g.ow, width: 8) { q in store8(load8(d + q) / (rd * load8(cd + q)), o + q) }
                    } else {
                        for q in 0..<g.ow { o[q] = d[q] / (rd * cd[q]) }
                    }
                }
                for ih in 0..<g.h {
                    let (r0, r1) = rowCover[ih]
                    let xr = dx + ih * g.w
                    if r0 == r1 { xr.update(repeating: 0, count: g.w); continue }
                    // t = the sum of the covering rows of gs (the first row read in place).
                    var tr = UnsafePointer(gs + r0 * g.ow)
                    if r1 - r0 > 1 {
                        if g.ow >= 8 {
                            forEachBlock(0..<g.ow, width: 8) { q in
                                var s = load8(gs + r0 * g.ow + q)
                                for r in (r0 + 1)..<r1 { s += load8(gs + r * g.ow + q) }
                                store8(s, t + q)
                            }
                        } else {
                            for q in 0..<g.ow {
                                var s = gs[r0 * g.ow + q]
                                for r in (r0 + 1)..<r1 { s += gs[r * g.ow + q] }
                                t[q] = s
                            }
                        }
                        tr = UnsafePointer(t)
                    }
                    avgPoolGatherRow(xr, tr, g, blocks: blocks, vecCols: vecCols, colCover: colCover)
                }
            }
        }
    }
}

/// dx[iw] = sum of t[q] over the output columns q covering iw, for one input row.
/// Stride 2, block at output column m (input columns b = 2m - pw ..< b + 16): column b + 2i is
/// covered by q = m+i-d for d in 0 ... (kw-1)/2, column b + 2i + 1 by q = m+i-d for d in
/// 0 ..< kw/2. Stride 1, block at input column b: q = b+i+pw-d for d in 0 ..< kw. `blocks` keeps
/// every such q inside 0 ..< OW and the block inside the row; `vecCols` is the input columns the
/// blocks cover, and the rest go through the scalar loop.
@inline(__always) private func avgPoolGatherRow(_ dx: UnsafeMutablePointer<Float>, _ t: UnsafePointer<Float>, _ g: PoolGeometry,
                                                blocks: Range<Int>, vecCols: Range<Int>, colCover: [(Int, Int)]) {
    @inline(__always) func scalar(_ iw: Int) {
        let (q0, q1) = colCover[iw]
        var s: Float = 0
        var q = q0
        while q < q1 { s += t[q]; q += 1 }
        dx[iw] = s
    }
    if vecCols.isEmpty {
        for iw in 0..<g.w { scalar(iw) }
        return
    }
    for iw in 0..<vecCols.lowerBound { scalar(iw) }
    if g.sw == 2 {
        forEachBlock(blocks, width: 8) { m in
            var even = load8(t + m), odd = SIMD8<Float>()
            if g.kw > 1 { odd = even }
            var d = 1
            while d <= (g.kw - 1) / 2 {
                let v = load8(t + m - d)
                even += v
                if d < g.kw / 2 { odd += v }
                d += 1
            }
            var both = SIMD16<Float>()
            both.evenHalf = even; both.oddHalf = odd
            UnsafeMutableRawPointer(dx + 2 * m - g.pw).storeBytes(of: both, as: SIMD16<Float>.self)
        }
    } else {
        forEachBlock(blocks, width: 8) { b in
            var s = load8(t + b + g.pw)
            var d = 1
            while d < g.kw { s += load8(t + b + g.pw - d); d += 1 }
            store8(s, dx + b)
        }
    }
    for iw in vecCols.upperBound..<g.w { scalar(iw) }
}

// MARK: - Reference kernels (tests compare the fast paths against these)

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

/// Average pooling forward, one window at a time in row-major order.
func avgPool2dForwardReference(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, _ g: PoolGeometry, countIncludePad: Bool) {
    for p in 0..<g.planes {
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

/// Average pooling backward, scattering each window's dy / divisor.
func avgPool2dBackwardReference(dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, _ g: PoolGeometry, countIncludePad: Bool) {
    dinput.update(repeating: 0, count: g.planes * g.h * g.w)
    for p in 0..<g.planes {
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

// MARK: - adaptive_avg_pool2d

/// Sum of `count` (>= 8) floats at `x` as 8 lane partials: two chains over blocks of 16, the
/// last whole 8 into the first, and a ragged tail read as the LAST 8 floats with the lanes already
/// counted masked out into the second. `lanePartials4` adds in exactly this order.
@inline(__always) func lanePartials(_ x: UnsafePointer<Float>, count: Int) -> SIMD8<Float> {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= count { a0 += load8(x + i); a1 += load8(x + i + 8); i += 16 }
    if i + 8 <= count { a0 += load8(x + i); i += 8 }
    if i < count { a1 += keepLast(load8(x + count - 8), count - i) }
    return a0 + a1
}

/// `lanePartials` of four planes of `count` floats at `x + k * stride`, read side by side: one
/// sequential stream per core leaves memory bandwidth unused (the hardware prefetcher runs only
/// so far ahead of a stream). A C sum over 32x96x48x48 floats took 1.5-2.1 ms on one thread
/// reading in order and 0.81-0.93 ms reading four quarters side by side (eight were no faster).
@inline(__always) func lanePartials4(_ x: UnsafePointer<Float>, stride: Int, count: Int)
    -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let x1 = x + stride, x2 = x + 2 * stride, x3 = x + 3 * stride
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b0 = SIMD8<Float>(), b1 = SIMD8<Float>()
    var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), d0 = SIMD8<Float>(), d1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= count {
        a0 += load8(x + i); a1 += load8(x + i + 8)
        b0 += load8(x1 + i); b1 += load8(x1 + i + 8)
        c0 += load8(x2 + i); c1 += load8(x2 + i + 8)
        d0 += load8(x3 + i); d1 += load8(x3 + i + 8)
        i += 16
    }
    if i + 8 <= count {
        a0 += load8(x + i); b0 += load8(x1 + i); c0 += load8(x2 + i); d0 += load8(x3 + i)
        i += 8
    }
    if i < count {
        let rem = count - i, at = count - 8
        a1 += keepLast(load8(x + at), rem); b1 += keepLast(load8(x1 + at), rem)
        c1 += keepLast(load8(x2 + at), rem); d1 += keepLast(load8(x3 + at), rem)
    }
    return (a0 + a1, b0 + b1, c0 + c1, d0 + d1)
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
        // Eight planes' lane partials -> their eight means at `y`.
        @inline(__always) func finish8(_ m: UnsafeMutablePointer<SIMD8<Float>>, _ y: UnsafeMutablePointer<Float>) {
            transpose8x8(m)
            let s = ((m[0] + m[1]) + m[2]) + m[3] + m[4] + m[5] + m[6] + m[7]
            store8(s * inv, y)
        }
        parallelFor(planes, grain: threadRunGrain(count: planes, work: hw)) { ps in
            let m = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 32)
            defer { m.deallocate() }
            // Four quarters of the run side by side (`lanePartials4`), eight planes of each at a
            // time, then the planes left over.
            let quarter = (ps.count / 4) & ~7
            var p = ps.lowerBound
            for g in Swift.stride(from: 0, to: quarter, by: 8) {
                for j in 0..<8 {
                    (m[j], m[8 + j], m[16 + j], m[24 + j]) = lanePartials4(input + (p + g + j) * hw, stride: quarter * hw, count: hw)
                }
                for k in 0..<4 { finish8(m + 8 * k, out + p + k * quarter + g) }
            }
            p += 4 * quarter
            while p + 8 <= ps.upperBound {
                for j in 0..<8 { m[j] = lanePartials(input + (p + j) * hw, count: hw) }
                finish8(m, out + p)
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

// Dense and grouped 2-D convolution (NCHW, Float32) through im2col + sgemm; 1x1 stride-1
// unpadded convolutions skip im2col (each image is already the GEMM's right-hand matrix).
// Depthwise convolution (groups == Cin) lives in Depthwise.swift; the forward of convolutions
// with at most 4 input channels (the networks' 3-channel stem) in StemConv.swift.
//
// Shapes:
//   x   [N, C, H, W]            input
//   w   [O, C/G, KH, KW]        weight (G = groups; output channel o reads group o / (O/G))
//   b   [O]                     bias (optional)
//   y   [N, O, OH, OW]          output, OH = (H + pt + pb - DH*(KH-1) - 1) / SH + 1 (floor)
//   col [C/G * KH * KW, OH*OW]  im2col matrix of one image and group:
//                               col[(c*KH + i)*KW + j][oh*OW + ow] = x[c][oh*SH - pt + i*DH][ow*SW - pl + j*DW]
//                               (zero outside the image)
// Per image n and group g:  y[n, g] (O/G x OH*OW) = w[g] (O/G x CKK) @ col (CKK x OH*OW)
// Backward:                 dw[g] += dy[n, g] @ col^T,  dcol = w[g]^T @ dy[n, g] -> col2im -> dx
//
// Small maps (HW <= 256: 12x12, 6x6, 3x3, 1x1 at 96 px input) make per-image GEMMs tiny, so
// 1x1 convolutions there run as ONE GEMM over the batch on channel-major copies:
//   xt [C, N*HW] = x transposed per image,  yt [O, N*HW] = w @ xt,  dw = dyt @ xt^T,  dxt = w^T @ dyt
//
// Threads: every path gives each thread a contiguous slice of images and runs it on that thread
// (pack or im2col, single-threaded GEMMs, unpack or col2im); only dw of the batched pointwise path,
// one product over all images, is split by sgemm. Other paths sum dw per slice, then the slices'
// partials in slice order.

/// Validated geometry of one conv2d call.
struct ConvGeometry {
    var n, c, h, w: Int
    var o, kh, kw: Int
    var groups: Int
    var sh, sw, dh, dw: Int
    var pt, pb, pl, pr: Int
    var oh, ow: Int

    /// Input / output channels per group, and the im2col row count.
    var cg: Int { c / groups }
    var og: Int { o / groups }
    var ckk: Int { cg * kh * kw }
    var hw: Int { h * w }
    var ohw: Int { oh * ow }

    /// A 1x1, stride-1, unpadded convolution: the image itself is the im2col matrix.
    var isPointwise: Bool { kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pb == 0 && pl == 0 && pr == 0 }
    /// A pointwise convolution whose forward runs on the direct kernels of Pointwise.swift: maps
    /// of 64+ pixels, and of 33-40 (6x6). At 3x3 the vectors would waste lanes and the batched
    /// GEMM wins.
    var isDirectPointwise: Bool { isPointwise && groups == 1 && (hw >= 64 || pointwise40Pixels.contains(hw)) && PointwiseKernel.direct }
    /// Its dx = w^T dy also runs there for projections (C >= O), and for expansions on maps of
    /// 64-256 pixels (12x12). Expansions on 6x6 maps and on maps of 24x24 and up keep sgemm, which
    /// was faster for them (bench ops: at 6x6 up to 6 % slower at 2 threads, at 48x48 13 % slower
    /// at 1 thread).
    var isDirectPointwiseInputGrad: Bool { isDirectPointwise && (c >= o || (hw >= 64 && hw <= 256)) }
    /// A pointwise convolution on a map small enough that one batched GEMM beats N small ones:
    /// maps of at most 256 pixels that the direct kernels do not take whole. On 12x12 maps the
    /// per-image path (direct dx, one dw GEMM per image) made the backward 1.06-1.26x faster than
    /// packing dy and x for one batched dw (bench ops, 1 and 2 threads); 6x6 maps still batch dw
    /// (and dx of the expansions).
    var isBatchedPointwise: Bool { isPointwise && groups == 1 && n > 1 && hw <= 256 && !(isDirectPointwise && hw >= 64) }
    /// One filter per input channel (channel multiplier O/C), handled by the direct kernels.
    var isDepthwise: Bool { groups == c && groups > 1 }

    init(input: [Int], weight: [Int], bias: [Int]?, stride: [Int], padding: [Int], dilation: [Int], groups: Int) throws {
        let op = "conv2d"
        guard input.count == 4 else { throw TensorError(op, "expected a 4-D input [N, C, H, W], got shape \(fmt(input))") }
        guard weight.count == 4 else { throw TensorError(op, "expected a 4-D weight [Cout, Cin/groups, kH, kW], got shape \(fmt(weight))") }
        guard groups >= 1 else { throw TensorError(op, "groups must be >= 1, got \(groups)") }
        (n, c, h, w) = (input[0], input[1], input[2], input[3])
        (o, kh, kw) = (weight[0], weight[2], weight[3])
        self.groups = groups
        guard c % groups == 0 else { throw TensorError(op, "input channels \(c) (input \(fmt(input))) are not divisible by groups \(groups)") }
        guard o % groups == 0, o > 0 else { throw TensorError(op, "output channels \(o) (weight \(fmt(weight))) must be positive and divisible by groups \(groups)") }
        guard weight[1] == c / groups else {
            throw TensorError(op, "weight \(fmt(weight)) expects \(weight[1] * groups) input channels (groups \(groups)), but input \(fmt(input)) has \(c)")
        }
        guard kh >= 1 && kw >= 1 else { throw TensorError(op, "kernel size must be >= 1, got weight \(fmt(weight))") }
        if let b = bias, b != [o] { throw TensorError(op, "bias shape \(fmt(b)) does not match output channels \(o) (expected [\(o)])") }
        (sh, sw) = try pair(stride, "stride", op: op, minimum: 1)
        (dh, dw) = try pair(dilation, "dilation", op: op, minimum: 1)
        (pt, pb, pl, pr) = try quad(padding, "padding", op: op)
        let effH = h + pt + pb - dh * (kh - 1), effW = w + pl + pr - dw * (kw - 1)
        guard effH >= 1 && effW >= 1 else {
            throw TensorError(op, "input \(fmt(input)) with padding \(padding) is smaller than the dilated kernel (\(dh * (kh - 1) + 1)x\(dw * (kw - 1) + 1))")
        }
        oh = (effH - 1) / sh + 1
        ow = (effW - 1) / sw + 1
    }
}

// MARK: - im2col / col2im

/// Fills `col` [CG*KH*KW, OH*OW] from the CG channels at `x` (one image, one group).
func im2col(_ col: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ g: ConvGeometry) {
    let (kh, kw, oh, ow, h, w) = (g.kh, g.kw, g.oh, g.ow, g.h, g.w)
    let (sh, sw, dh, dw, pt, pl) = (g.sh, g.sw, g.dh, g.dw, g.pt, g.pl)
    parallelFor(g.ckk, grain: grainFor(work: g.ohw)) { rows in
        for row in rows {
            let c = row / (kh * kw), i = (row / kw) % kh, j = row % kw
            let plane = x + c * h * w
            let dst = col + row * oh * ow
            // Output columns whose input column lies inside the image: 0 <= ow*sw - pl + j*dw < w.
            let shift = j * dw - pl
            let lo = Swift.min(ow, shift >= 0 ? 0 : (-shift + sw - 1) / sw)
            let hi = Swift.max(lo, Swift.min(ow, w - shift <= 0 ? 0 : (w - shift - 1) / sw + 1))
            for y in 0..<oh {
                let ih = y * sh - pt + i * dh
                let d = dst + y * ow
                guard ih >= 0 && ih < h else { d.update(repeating: 0, count: ow); continue }
                let src = plane + ih * w + shift
                if lo > 0 { d.update(repeating: 0, count: lo) }
                if sw == 1 {
                    (d + lo).update(from: src + lo, count: hi - lo)
                } else {
                    for q in lo..<hi { d[q] = src[q * sw] }
                }
                if hi < ow { (d + hi).update(repeating: 0, count: ow - hi) }
            }
        }
    }
}

/// Adds `col` [CG*KH*KW, OH*OW] back into the CG channels at `dx` (the adjoint of im2col).
/// Parallel over channels so that no two tasks write the same plane.
func col2im(_ dx: UnsafeMutablePointer<Float>, _ col: UnsafePointer<Float>, _ g: ConvGeometry) {
    let (kh, kw, oh, ow, h, w) = (g.kh, g.kw, g.oh, g.ow, g.h, g.w)
    let (sh, sw, dh, dw, pt, pl) = (g.sh, g.sw, g.dh, g.dw, g.pt, g.pl)
    parallelFor(g.cg, grain: grainFor(work: kh * kw * g.ohw)) { chans in
        for c in chans {
            let plane = dx + c * h * w
            for i in 0..<kh {
                for j in 0..<kw {
                    let src = col + ((c * kh + i) * kw + j) * oh * ow
                    let shift = j * dw - pl
                    let lo = Swift.min(ow, shift >= 0 ? 0 : (-shift + sw - 1) / sw)
                    let hi = Swift.max(lo, Swift.min(ow, w - shift <= 0 ? 0 : (w - shift - 1) / sw + 1))
                    for y in 0..<oh {
                        let ih = y * sh - pt + i * dh
                        guard ih >= 0 && ih < h else { continue }
                        let d = plane + ih * w + shift, s = src + y * ow
                        if sw == 1 {
                            for q in lo..<hi { d[q] += s[q] }
                        } else {
                            for q in lo..<hi { d[q * sw] += s[q] }
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Forward / backward

/// Boundaries of `n` images cut into one contiguous slice per available thread (none empty).
func imageSlices(_ n: Int) -> [Int] {
    let parts = Swift.max(1, Swift.min(Runtime.availableThreads, n))
    return (0...parts).map { $0 * n / parts }
}

/// Runs `body(t, images)` for each slice `t` of `slices` (boundaries from `imageSlices`), one
/// task per slice.
@inline(__always) func forEachImageSlice(_ slices: [Int], _ body: (_ t: Int, _ images: Range<Int>) -> Void) {
    parallelTasks(slices.count - 1) { t in body(t, slices[t]..<slices[t + 1]) }
}

/// [N, C, HW] -> [C, ld] with image `img` of channel `ch` at `ch * ld + img * HW` (ld defaults to
/// N*HW; a larger ld writes a slice of images into a wider buffer).
func packChannelMajor(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, n: Int, c: Int, hw: Int, ld: Int? = nil) {
    let ld = ld ?? n * hw
    parallelFor(c, grain: grainFor(work: n * hw)) { chans in
        // Image-major so that the source is read sequentially.
        for img in 0..<n { for ch in chans { copyFloats(dst + ch * ld + img * hw, src + (img * c + ch) * hw, hw) } }
    }
}

/// [C, N*HW] -> [N, C, HW], adding `bias[ch]` when given.
func unpackChannelMajor(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, n: Int, c: Int, hw: Int,
                        bias: UnsafePointer<Float>? = nil) {
    parallelFor(c, grain: grainFor(work: n * hw)) { chans in
        for img in 0..<n {
            for ch in chans {
                let d = dst + (img * c + ch) * hw, s = src + (ch * n + img) * hw
                if let bias { let b = bias[ch]; for i in 0..<hw { d[i] = s[i] + b } } else { copyFloats(d, s, hw) }
            }
        }
    }
}

/// y = conv2d(x, w) + b for dense and grouped convolutions (see the legend at the top).
func conv2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                   bias: UnsafePointer<Float>?, _ g: ConvGeometry) {
    if g.isPointwise && g.groups == 1 && g.hw == 1 {
        // 1x1 maps (squeeze-and-excitation): x [N, C, 1, 1] is the matrix [N, C], so this is a
        // linear layer, y [N, O] = x @ w[O, C]^T + b, with no packing.
        linearForward(out: out, input: input, weight: weight, bias: bias, batch: g.n, inFeatures: g.c, outFeatures: g.o)
        return
    }
    if isStemConv(g) {
        // Few input channels (the 3-channel stem): direct SIMD rows, no im2col (StemConv.swift).
        stemConvForward(out: out, input: input, weight: weight, bias: bias, g)
        return
    }
    if g.isDirectPointwise {
        // Image by image, straight from NCHW to NCHW; one slice of images per thread.
        forEachImageSlice(imageSlices(g.n)) { _, images in
            for img in images {
                pointwiseProduct(out + img * g.o * g.hw, weight, lda: g.c, input + img * g.c * g.hw, bias: bias, m: g.o, k: g.c, pixels: g.hw)
            }
        }
        return
    }
    if g.isBatchedPointwise {
        // One slice of images per thread, each packed, multiplied and unpacked on its own thread
        // (one fork-join; a slice stays in its core's cache between the three steps). Each thread
        // packs all of w for its slice, so when w is the larger operand (more output channels than
        // columns, as on 3x3 maps) the slice is the whole batch and sgemm splits the rows of w.
        forEachImageSlice(g.o <= g.n * g.hw ? imageSlices(g.n) : [0, g.n]) { _, images in
            let (lo, cnt) = (images.lowerBound, images.count)
            let cols = cnt * g.hw
            let xt = UnsafeMutablePointer<Float>.allocate(capacity: (g.c + g.o) * cols)
            defer { xt.deallocate() }
            let yt = xt + g.c * cols
            packChannelMajor(xt, input + lo * g.c * g.hw, n: cnt, c: g.c, hw: g.hw)
            sgemm(transA: false, transB: false, m: g.o, n: cols, k: g.c, a: weight, lda: g.c, b: xt, ldb: cols, c: yt, ldc: cols)
            unpackChannelMajor(out + lo * g.o * g.hw, yt, n: cnt, c: g.o, hw: g.hw, bias: bias)
        }
        return
    }
    // One slice of images per thread, image by image (im2col, GEMM) on that thread: per-image
    // products are too small to split well, whole images are not.
    let (ckk, og, ohw) = (g.ckk, g.og, g.ohw)
    forEachImageSlice(imageSlices(g.n)) { _, images in
        let col: UnsafeMutablePointer<Float>? = g.isPointwise ? nil : .allocate(capacity: ckk * ohw)
        defer { col?.deallocate() }
        for n in images {
            for grp in 0..<g.groups {
                let x = input + (n * g.c + grp * g.cg) * g.hw
                let b: UnsafePointer<Float>
                if let col { im2col(col, x, g); b = UnsafePointer(col) } else { b = x }
                sgemm(transA: false, transB: false, m: og, n: ohw, k: ckk,
                      a: weight + grp * og * ckk, lda: ckk, b: b, ldb: ohw,
                      c: out + (n * g.o + grp * og) * ohw, ldc: ohw)
            }
        }
        if let bias { addChannelBias(out + images.lowerBound * g.o * ohw, bias, n: images.count, c: g.o, hw: ohw) }
    }
}

/// Gradients of `conv2dForward`. Each destination that is non-nil is overwritten.
func conv2dBackward(dinput: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
                    dout: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry) {
    let (ckk, og, ohw) = (g.ckk, g.og, g.ohw)
    if g.isPointwise && g.groups == 1 && g.hw == 1 {
        linearBackward(dinput: dinput, dweight: dweight, dbias: dbias, dout: dout, input: input, weight: weight,
                       batch: g.n, inFeatures: g.c, outFeatures: g.o)
        return
    }
    if let dbias { channelSums(dbias, dout, n: g.n, c: g.o, hw: ohw) }
    guard dinput != nil || dweight != nil else { return }
    if g.isDirectPointwiseInputGrad, let dinput {
        // dx[n] = w^T dy[n] by the direct kernel on w^T [C, O]; dw by the GEMM paths below.
        let wt = UnsafeMutablePointer<Float>.allocate(capacity: g.o * g.c)
        defer { wt.deallocate() }
        for o in 0..<g.o { for c in 0..<g.c { wt[c * g.o + o] = weight[o * g.c + c] } }
        forEachImageSlice(imageSlices(g.n)) { _, images in
            for img in images {
                pointwiseProduct(dinput + img * g.c * g.hw, wt, lda: g.o, dout + img * g.o * g.hw, bias: nil, m: g.c, k: g.o, pixels: g.hw)
            }
        }
        conv2dBackward(dinput: nil, dweight: dweight, dbias: nil, dout: dout, input: input, weight: weight, g)
        return
    }
    if g.isBatchedPointwise {
        // Per slice of images (one per thread): pack dy (and x for dw) into the full
        // channel-major buffers at the slice's columns, and compute the slice's dx. Then dw, a
        // product over all columns, split across the threads by sgemm.
        let cols = g.n * g.hw
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: (dweight != nil ? g.c * cols : 0) + g.o * cols)
        defer { buf.deallocate() }
        let dyt = buf, xt = buf + g.o * cols
        // As in the forward, for dx = w^T dy.
        forEachImageSlice(g.c <= cols ? imageSlices(g.n) : [0, g.n]) { _, images in
            let (lo, cnt) = (images.lowerBound, images.count)
            let c0 = lo * g.hw, sc = cnt * g.hw
            packChannelMajor(dyt + c0, dout + lo * g.o * g.hw, n: cnt, c: g.o, hw: g.hw, ld: cols)
            if dweight != nil { packChannelMajor(xt + c0, input + lo * g.c * g.hw, n: cnt, c: g.c, hw: g.hw, ld: cols) }
            if let dinput {
                let dxt = UnsafeMutablePointer<Float>.allocate(capacity: g.c * sc)
                defer { dxt.deallocate() }
                sgemm(transA: true, transB: false, m: g.c, n: sc, k: g.o, a: weight, lda: g.c, b: dyt + c0, ldb: cols, c: dxt, ldc: sc)
                unpackChannelMajor(dinput + lo * g.c * g.hw, dxt, n: cnt, c: g.c, hw: g.hw)
            }
        }
        if let dweight {
            sgemm(transA: false, transB: true, m: g.o, n: g.c, k: cols, a: dyt, lda: cols, b: xt, ldb: cols, c: dweight, ldc: g.c)
        }
        return
    }
    // One slice of images per thread. dx is per image; dw sums over images, so each slice after
    // the first accumulates its own partial dw, added to the first slice's in slice order (the
    // same order for a given thread count).
    let slices = imageSlices(g.n)
    let wsize = g.o * ckk
    let partials: UnsafeMutablePointer<Float>? = dweight != nil && slices.count > 2 ? .allocate(capacity: (slices.count - 2) * wsize) : nil
    defer { partials?.deallocate() }
    forEachImageSlice(slices) { t, images in
        let col: UnsafeMutablePointer<Float>? = g.isPointwise ? nil : .allocate(capacity: ckk * ohw)
        defer { col?.deallocate() }
        let dw: UnsafeMutablePointer<Float>? = t == 0 ? dweight : partials.map { $0 + (t - 1) * wsize }
        let lo = images.lowerBound
        if let dinput { (dinput + lo * g.c * g.hw).update(repeating: 0, count: images.count * g.c * g.hw) }
        for n in images {
            for grp in 0..<g.groups {
                let x = input + (n * g.c + grp * g.cg) * g.hw
                let dy = dout + (n * g.o + grp * og) * ohw
                let wg = weight + grp * og * ckk
                if let dw {
                    // dw[g] (og x ckk) (+)= dy (og x ohw) @ col^T (ohw x ckk)
                    let b: UnsafePointer<Float>
                    if let col { im2col(col, x, g); b = UnsafePointer(col) } else { b = x }
                    sgemm(transA: false, transB: true, m: og, n: ckk, k: ohw, a: dy, lda: ohw, b: b, ldb: ohw,
                          beta: n == lo ? 0 : 1, c: dw + grp * og * ckk, ldc: ckk)
                }
                if let dinput {
                    let dx = dinput + (n * g.c + grp * g.cg) * g.hw
                    // dcol (ckk x ohw) = w[g]^T (ckk x og) @ dy (og x ohw)
                    if let col {
                        sgemm(transA: true, transB: false, m: ckk, n: ohw, k: og, a: wg, lda: ckk, b: dy, ldb: ohw, c: col, ldc: ohw)
                        col2im(dx, col, g)
                    } else {
                        sgemm(transA: true, transB: false, m: ckk, n: ohw, k: og, a: wg, lda: ckk, b: dy, ldb: ohw, c: dx, ldc: ohw)
                    }
                }
            }
        }
    }
    if let dweight, let partials {
        for t in 0..<(slices.count - 2) {
            let p = partials + t * wsize
            for i in 0..<wsize { dweight[i] += p[i] }
        }
    }
}

// MARK: - Per-channel helpers (also used by the depthwise and batch-norm kernels)

/// y[n, c, :] += b[c] for y [N, C, HW].
func addChannelBias(_ y: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, n: Int, c: Int, hw: Int) {
    parallelFor(n * c, grain: grainFor(work: hw)) { planes in
        for p in planes {
            let v = b[p % c], row = y + p * hw
            for i in 0..<hw { row[i] += v }
        }
    }
}

/// s[c] = sum over n and hw of y[n, c, hw] (summed in a fixed order; Double accumulation).
func channelSums(_ s: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, n: Int, c: Int, hw: Int) {
    parallelFor(c, grain: grainFor(work: n * hw)) { chans in
        for ch in chans {
            var total = 0.0
            for img in 0..<n {
                let row = y + (img * c + ch) * hw
                var acc = SIMD8<Float>()
                var i = 0
                while i + 8 <= hw { acc += load8(row + i); i += 8 }
                var t = hsum(acc)
                while i < hw { t += Double(row[i]); i += 1 }
                total += t
            }
            s[ch] = Float(total)
        }
    }
}

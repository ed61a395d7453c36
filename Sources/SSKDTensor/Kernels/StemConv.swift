// Direct forward of dense convolutions with few input channels (the 3 -> 32, 3x3, stride-2 stem
// of MobileNetV2 and EfficientNet-B0), without im2col.
//
// Shapes (one image; S = stride, the same on both axes):
//   x     [C, H, W]                 input
//   w     [O, C, KH, KW]            weight
//   wp    [ceil(O/4)][CKK][4]       weight regrouped: 4 output channels per tap (zeros past O)
//   buf   [C][bufSize]              each channel's plane zero-padded and split into S x S phases
//                                   of PW-wide rows: the layout of Depthwise.swift (`DepthwisePlan`)
//   y     [O, OH, OW]               output
// Tap (c, i, j) of output (r, q) reads padded pixel (r*S + i, q*S + j), which lives in phase
// (i % S, j % S) at row r + i / S, column q + j / S: for eight consecutive outputs of a row, eight
// consecutive floats. So a row is a few SIMD8 vectors, and
//   y[o][r][q..<q+8] = b[o] + sum_t wp[o/4][t][o%4] * buf[off[t] + r*PW + q ..< +8]
// with off[t] = c*bufSize + the plan's tap offset. Lanes past OW read the next phase row (or the
// plan's slack after the last one) and are dropped. Four output channels times three vectors make 12
// accumulators; each tap loads three input vectors and four weights for 12 FMAs.
//
// Why: with 27 im2col rows the GEMM is short and wide, and im2col's stride-2 gathers, OpenBLAS's
// packing and its C = 0 pass cost as much as the products (perf: sgemm kernel 33 %, im2col 27 %,
// sgemm_beta 10 % of the stem's forward and backward). The backward keeps im2col + sgemm.

#if canImport(Glibc)
import Glibc
#endif

/// Whether `stemConvForward` serves this convolution: no groups, no dilation, equal strides of
/// 1 or 2, at most 4 input channels (so the phase planes stay a few KiB each) and rows of 8+ outputs.
@inline(__always) func isStemConv(_ g: ConvGeometry) -> Bool {
    g.groups == 1 && g.c <= 4 && g.dh == 1 && g.dw == 1 && g.sh == g.sw && (g.sh == 1 || g.sh == 2) && g.ow >= 8
        && !g.isPointwise && StemKernel.direct
}

/// Kernel switch, to compare paths (tests, `sskd bench ops`): `SSKD_STEM_DIRECT=0` sends these
/// convolutions through im2col + sgemm.
enum StemKernel {
    nonisolated(unsafe) static var direct: Bool = getenv("SSKD_STEM_DIRECT").map { String(cString: $0) != "0" } ?? true
}

/// One output row r of up to four output channels: channel u's row at y + u*stride.
private struct StemRows {
    let y: UnsafeMutablePointer<Float>
    let stride, count, ow: Int

    /// Stores `v` as outputs q ..< q+8 of channel u's row (if u < count), dropping lanes past
    /// the row's end.
    @inline(__always) func store(_ v: SIMD8<Float>, channel u: Int, q: Int) {
        guard u < count else { return }
        let row = y + u * stride
        if q + 8 <= ow { store8(v, row + q) } else { for l in 0..<(ow - q) { row[q + l] = v[l] } }
    }
}

/// y = conv2d(x, w) + b for the convolutions `isStemConv` accepts.
func stemConvForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                     bias: UnsafePointer<Float>?, _ g: ConvGeometry) {
    let plan = DepthwisePlan(g), ckk = g.ckk, blocks = (g.o + 3) / 4, vectors = (g.ow + 7) / 8
    // Tap t = (c, i, j) reads channel c's phase buffer at the plan's offset of tap (i, j).
    var offsets: [Int] = []
    for c in 0..<g.c { for t in 0..<plan.k { offsets.append(c * plan.bufSize + plan.tap[t]) } }
    // wp[ob][t][u] = w[4*ob + u][t], zero past O.
    let wp = UnsafeMutablePointer<Float>.allocate(capacity: blocks * ckk * 4)
    defer { wp.deallocate() }
    wp.update(repeating: 0, count: blocks * ckk * 4)
    for o in 0..<g.o { for t in 0..<ckk { wp[((o / 4) * ckk + t) * 4 + o % 4] = weight[o * ckk + t] } }
    offsets.withUnsafeBufferPointer { ob in
        let off = ob.baseAddress!
        forEachImageSlice(imageSlices(g.n)) { _, images in
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: g.c * plan.bufSize)
            defer { buf.deallocate() }
            for n in images {
                for c in 0..<g.c { plan.fill(buf + c * plan.bufSize, from: input + (n * g.c + c) * g.hw) }
                let y = out + n * g.o * g.ohw
                for blk in 0..<blocks {
                    let w4 = wp + blk * ckk * 4, cnt = Swift.min(4, g.o - blk * 4)
                    var b = SIMD4<Float>()
                    if let bias { for u in 0..<cnt { b[u] = bias[blk * 4 + u] } }
                    for r in 0..<g.oh {
                        let rowBase = buf + r * plan.pw, yr = y + blk * 4 * g.ohw + r * g.ow
                        let rows = StemRows(y: yr, stride: g.ohw, count: cnt, ow: g.ow)
                        var v = 0
                        while v < vectors {
                            if v + 3 <= vectors {
                                stemRow3(rows, rowBase + v * 8, w4, off, ckk: ckk, bias: b, q: v * 8)
                                v += 3
                            } else {
                                stemRow1(rows, rowBase + v * 8, w4, off, ckk: ckk, bias: b, q: v * 8)
                                v += 1
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Three vectors (24 outputs from q) of one row for four output channels: 12 accumulators.
@inline(__always) private func stemRow3(_ out: StemRows, _ x: UnsafePointer<Float>,
                                        _ w4: UnsafePointer<Float>, _ off: UnsafePointer<Int>, ckk: Int,
                                        bias: SIMD4<Float>, q: Int) {
    var a0 = SIMD8<Float>(repeating: bias[0]), a1 = a0, a2 = a0
    var b0 = SIMD8<Float>(repeating: bias[1]), b1 = b0, b2 = b0
    var c0 = SIMD8<Float>(repeating: bias[2]), c1 = c0, c2 = c0
    var d0 = SIMD8<Float>(repeating: bias[3]), d1 = d0, d2 = d0
    for t in 0..<ckk {
        let p = x + off[t], w = w4 + 4 * t
        let x0 = load8(p), x1 = load8(p + 8), x2 = load8(p + 16)
        let wa = SIMD8<Float>(repeating: w[0]), wb = SIMD8<Float>(repeating: w[1])
        let wc = SIMD8<Float>(repeating: w[2]), wd = SIMD8<Float>(repeating: w[3])
        a0 = a0.addingProduct(x0, wa); a1 = a1.addingProduct(x1, wa); a2 = a2.addingProduct(x2, wa)
        b0 = b0.addingProduct(x0, wb); b1 = b1.addingProduct(x1, wb); b2 = b2.addingProduct(x2, wb)
        c0 = c0.addingProduct(x0, wc); c1 = c1.addingProduct(x1, wc); c2 = c2.addingProduct(x2, wc)
        d0 = d0.addingProduct(x0, wd); d1 = d1.addingProduct(x1, wd); d2 = d2.addingProduct(x2, wd)
    }
    out.store(a0, channel: 0, q: q); out.store(a1, channel: 0, q: q + 8); out.store(a2, channel: 0, q: q + 16)
    out.store(b0, channel: 1, q: q); out.store(b1, channel: 1, q: q + 8); out.store(b2, channel: 1, q: q + 16)
    out.store(c0, channel: 2, q: q); out.store(c1, channel: 2, q: q + 8); out.store(c2, channel: 2, q: q + 16)
    out.store(d0, channel: 3, q: q); out.store(d1, channel: 3, q: q + 8); out.store(d2, channel: 3, q: q + 16)
}

/// One vector (8 outputs from q) of one row for four output channels.
@inline(__always) private func stemRow1(_ out: StemRows, _ x: UnsafePointer<Float>,
                                        _ w4: UnsafePointer<Float>, _ off: UnsafePointer<Int>, ckk: Int,
                                        bias: SIMD4<Float>, q: Int) {
    var a = SIMD8<Float>(repeating: bias[0]), b = SIMD8<Float>(repeating: bias[1])
    var c = SIMD8<Float>(repeating: bias[2]), d = SIMD8<Float>(repeating: bias[3])
    for t in 0..<ckk {
        let xv = load8(x + off[t]), w = w4 + 4 * t
        a = a.addingProduct(xv, SIMD8(repeating: w[0])); b = b.addingProduct(xv, SIMD8(repeating: w[1]))
        c = c.addingProduct(xv, SIMD8(repeating: w[2])); d = d.addingProduct(xv, SIMD8(repeating: w[3]))
    }
    out.store(a, channel: 0, q: q); out.store(b, channel: 1, q: q)
    out.store(c, channel: 2, q: q); out.store(d, channel: 3, q: q)
}

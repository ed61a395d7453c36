#if canImport(Glibc)
import Glibc
#endif

// PyTorch-style printing (torch/_tensor_str.py with the default print options): 4 decimals,
// all values right-aligned to one width, integral tensors as `1.`, scientific notation when the
// magnitudes span more than 1e3 or leave [1e-4, 1e8], tensors of more than 1000 elements
// summarised with 3 entries at each end of every dim, rows wrapped at 80 columns.

/// Print options (PyTorch's defaults).
enum PrintOptions {
    static let precision = 4
    static let threshold = 1000
    static let edgeItems = 3
    static let lineWidth = 80
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let prefix = "tensor("
        var body: String
        var suffixes: [String] = []
        if count == 0 {
            body = "[]"
            if shape != [0] { suffixes.append("size=(" + shape.map(String.init).joined(separator: ", ") + (dim == 1 ? ",)" : ")")) }
        } else {
            body = formatValues(indent: prefix.count)
        }
        if let fn = gradFn { suffixes.append("grad_fn=<\(fn.name)>") } else if requiresGrad { suffixes.append("requires_grad=True") }
        // Suffixes go on the last line unless it would pass the line width.
        var lastLine = body.count - (body.lastIndex(of: "\n").map { body.distance(from: body.startIndex, to: $0) } ?? -1)
        for s in suffixes {
            if lastLine + s.count + 2 > PrintOptions.lineWidth {
                body += ",\n" + String(repeating: " ", count: prefix.count) + s
                lastLine = prefix.count + s.count
            } else {
                body += ", " + s
                lastLine += s.count + 2
            }
        }
        return prefix + body + ")"
    }

    /// The bracketed values, as `torch._tensor_str` lays them out after an indent of `indent` columns.
    func formatValues(indent: Int = 7) -> String {
        let summarize = count > PrintOptions.threshold
        let edge = PrintOptions.edgeItems
        /// Indices shown along a dim of size n (nil marks the "..." gap).
        func shown(_ n: Int) -> [Int?] {
            summarize && n > 2 * edge ? Array(0..<edge).map { $0 } + [nil] + Array((n - edge)..<n).map { $0 } : Array(0..<n).map { $0 }
        }
        // The formatter sees only the values that will be printed.
        var visible: [Float] = []
        func collect(_ d: Int, _ offset: Int) {
            if dim == 0 { visible.append(data[0]); return }
            let stride = shape[(d + 1)...].reduce(1, *)
            for i in shown(shape[d]).compactMap({ $0 }) {
                if d == dim - 1 { visible.append(data[offset + i]) } else { collect(d + 1, offset + i * stride) }
            }
        }
        collect(0, 0)
        let f = ValueFormatter(visible)
        if dim == 0 { return f.format(data[0]) }

        func rec(_ d: Int, _ offset: Int, _ indent: Int) -> String {
            let n = shape[d], stride = shape[(d + 1)...].reduce(1, *)
            let idx = shown(n)
            if d == dim - 1 {
                let items = idx.map { $0.map { f.format(data[offset + $0]) } ?? " ..." }
                let perLine = Swift.max(1, (PrintOptions.lineWidth - indent) / (f.width + 2))
                var lines: [String] = []
                var i = 0
                while i < items.count {
                    lines.append(items[i..<Swift.min(items.count, i + perLine)].joined(separator: ", "))
                    i += perLine
                }
                return "[" + lines.joined(separator: ",\n" + String(repeating: " ", count: indent + 1)) + "]"
            }
            let sep = "," + String(repeating: "\n", count: dim - d - 1) + String(repeating: " ", count: indent + 1)
            return "[" + idx.map { $0.map { rec(d + 1, offset + $0 * stride, indent + 1) } ?? "..." }.joined(separator: sep) + "]"
        }
        return rec(0, 0, indent)
    }
}

/// torch._tensor_str._Formatter for floating tensors: picks integer, fixed or scientific mode
/// from the finite non-zero values and pads every value to the widest.
struct ValueFormatter {
    var intMode = true
    var sciMode = false
    var width = 1

    init(_ values: [Float]) {
        let finite = values.filter { $0.isFinite && $0 != 0 }
        guard !finite.isEmpty else { return }
        let mags = finite.map { Double(Swift.abs($0)) }
        let lo = mags.min()!, hi = mags.max()!
        intMode = finite.allSatisfy { $0 == $0.rounded(.up) }
        sciMode = hi / lo > 1000 || hi > 1e8 || lo < 1e-4
        for v in finite {
            let s = sciMode ? cFormat("%.*e", v) : (intMode ? cFormat("%.0f", v) + "." : cFormat("%.*f", v))
            width = Swift.max(width, s.count)
        }
    }

    func format(_ v: Float) -> String {
        let s: String
        if sciMode { s = cFormat("%.*e", v) }
        else if intMode { s = cFormat("%.0f", v) + (v.isFinite ? "." : "") }
        else { s = cFormat("%.*f", v) }
        return String(repeating: " ", count: Swift.max(0, width - s.count)) + s
    }
}

/// printf-style formatting of one value (the precision is PrintOptions.precision where the format
/// asks for `*`), spelled like Python's: nan, inf, -inf.
func cFormat(_ format: String, _ v: Float) -> String {
    if v.isNaN { return "nan" }
    if v.isInfinite { return v > 0 ? "inf" : "-inf" }
    var buf = [CChar](repeating: 0, count: 64)
    let args: [CVarArg] = format.contains("*") ? [Int32(PrintOptions.precision), Double(v)] : [Double(v)]
    _ = buf.withUnsafeMutableBufferPointer { p in
        withVaList(args) { vsnprintf(p.baseAddress, 64, format, $0) }
    }
    return String(cString: buf)
}

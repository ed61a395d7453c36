/// PyTorch-style printing: values with 4 decimals, at most 3 entries at each end of a dim.
extension Tensor: CustomStringConvertible {
    public var description: String {
        var s = "tensor(" + formatValues() + (dim > 1 || count > 6 ? ", shape=\(fmt(shape))" : "")
        if let fn = gradFn { s += ", grad_fn=<\(fn.name)>" } else if requiresGrad { s += ", requires_grad=true" }
        return s + ")"
    }

    func formatValues(edge: Int = 3) -> String {
        if dim == 0 { return fmtValue(data[0]) }
        func rec(_ d: Int, _ offset: Int, _ indent: String) -> String {
            let n = shape[d], stride = shape[(d + 1)...].reduce(1, *)
            let idx: [Int?] = n > 2 * edge ? Array(0..<edge).map { $0 } + [nil] + Array((n - edge)..<n).map { $0 } : Array(0..<n).map { $0 }
            if d == dim - 1 {
                return "[" + idx.map { $0.map { fmtValue(data[offset + $0]) } ?? "..." }.joined(separator: ", ") + "]"
            }
            let sep = ",\n" + String(repeating: "\n", count: Swift.max(0, dim - d - 2)) + indent + " "
            return "[" + idx.map { $0.map { rec(d + 1, offset + $0 * stride, indent + " ") } ?? "..." }.joined(separator: sep) + "]"
        }
        return rec(0, 0, "       ")
    }
}

func fmtValue(_ v: Float) -> String {
    if v.isNaN { return "nan" }
    if v.isInfinite { return v > 0 ? "inf" : "-inf" }
    let a = Swift.abs(v)
    if a != 0 && (a >= 1e6 || a < 1e-4) {
        // scientific, 4 significant decimals
        var e = 0; var m = Double(a)
        while m >= 10 { m /= 10; e += 1 }
        while m < 1 { m *= 10; e -= 1 }
        let r = (m * 10000).rounded() / 10000
        return (v < 0 ? "-" : "") + String(format4(r)) + "e" + (e < 0 ? "-" : "+") + (Swift.abs(e) < 10 ? "0" : "") + String(Swift.abs(e))
    }
    return (v < 0 ? "-" : "") + format4(Double(a))
}

/// Fixed 4 decimals without Foundation.
func format4(_ x: Double) -> String {
    let scaled = (x * 10000).rounded()
    let ip = Int(scaled / 10000), fp = Int(scaled) - ip * 10000
    let f = String(fp)
    return "\(ip)." + String(repeating: "0", count: 4 - f.count) + f
}

/// The result of comparing autograd gradients with central finite differences.
public struct GradCheckReport: CustomStringConvertible {
    /// Largest |analytic - numeric| over all checked entries.
    public var maxAbsError: Float = 0
    /// Where the worst entry was: input number and flat index.
    public var worst: (input: Int, index: Int) = (0, 0)
    /// Entries outside `atol + rtol * |numeric|`.
    public var failures: [(input: Int, index: Int, analytic: Float, numeric: Float)] = []
    public var passed: Bool { failures.isEmpty }
    public var description: String {
        passed ? "gradcheck passed (max abs error \(maxAbsError))"
            : "gradcheck failed at \(failures.count) entries; first: input \(failures[0].input) index \(failures[0].index): analytic \(failures[0].analytic), numeric \(failures[0].numeric)"
    }
}

/// Checks the gradient of `f` with respect to every input that requires grad.
///
/// The output (any shape) is projected to a scalar with fixed random weights, so the whole
/// Jacobian is exercised through vector-Jacobian products; each input entry is perturbed by
/// +-`eps` (central differences, in Float32, so tolerances are loose by float64 standards).
public func gradcheck(_ inputs: [Tensor], eps: Float = 1e-3, atol: Float = 1e-3, rtol: Float = 1e-2,
                      seed: UInt64 = 1234, _ f: ([Tensor]) throws -> Tensor) throws -> GradCheckReport {
    guard inputs.contains(where: { $0.requiresGrad }) else { throw TensorError("gradcheck", "no input requires grad") }
    for x in inputs { x.grad = nil }
    let y0 = try f(inputs)
    let w = try Tensor.uniform(y0.shape, low: 0.5, high: 1.5, generator: Generator(seed: seed))
    // Analytic: d(sum(w * y))/dx.
    let loss = try (y0 * w).sum()
    guard loss.requiresGrad else { throw TensorError("gradcheck", "the function's output does not depend on any input that requires grad") }
    try loss.backward()
    func project(_ y: Tensor) -> Double {
        var s = 0.0
        for i in 0..<y.count { s += Double(y.data[i]) * Double(w.data[i]) }
        return s
    }
    var report = GradCheckReport()
    try withNoGrad {
        for (k, x) in inputs.enumerated() where x.requiresGrad {
            let analytic = try x.grad ?? Tensor.zeros(like: x)
            for i in 0..<x.count {
                let orig = x.data[i]
                x.data[i] = orig + eps
                let up = project(try f(inputs))
                x.data[i] = orig - eps
                let down = project(try f(inputs))
                x.data[i] = orig
                let numeric = Float((up - down) / (2 * Double(eps)))
                let a = analytic.data[i]
                let err = Swift.abs(a - numeric)
                if err > report.maxAbsError { report.maxAbsError = err; report.worst = (k, i) }
                if !(err <= atol + rtol * Swift.abs(numeric)) { report.failures.append((k, i, a, numeric)) }
            }
        }
    }
    for x in inputs { x.grad = nil }
    return report
}

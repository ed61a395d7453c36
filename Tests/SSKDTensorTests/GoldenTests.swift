import Foundation
import XCTest
import SSKDTensor

/// Forward values and input gradients against PyTorch (float64 reference), from the fixture
/// written by scripts/reference/tensor_golden.py.
final class GoldenTests: XCTestCase {
    struct Case {
        let name: String, op: String
        let args: [String: Any]
        let inputs: [Tensor]
        let output: Tensor
        let upstream: Tensor?
        let grads: [Tensor?]
    }

    static func tensor(_ any: Any?) throws -> Tensor {
        guard let d = any as? [String: Any], let shape = d["shape"] as? [Int], let values = d["values"] as? [Double] else {
            throw TensorError("golden", "malformed tensor entry")
        }
        return try Tensor(values.map(Float.init), shape: shape)
    }

    static func loadCases() throws -> [Case] {
        guard let url = Bundle.module.url(forResource: "tensor_golden", withExtension: "json", subdirectory: "Fixtures") else {
            throw TensorError("golden", "Fixtures/tensor_golden.json is missing from the test bundle")
        }
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return try (root["cases"] as! [[String: Any]]).map { c in
            let inputs = try (c["inputs"] as! [[String: Any]]).map { d -> Tensor in
                try tensor(d).requiringGrad(d["requiresGrad"] as? Bool ?? false)
            }
            return Case(name: c["name"] as! String, op: c["op"] as! String, args: c["args"] as? [String: Any] ?? [:],
                        inputs: inputs, output: try tensor(c["output"]),
                        upstream: c["upstream"].map { try? tensor($0) } ?? nil,
                        grads: (c["grads"] as? [Any] ?? []).map { try? tensor($0) })
        }
    }

    /// Runs the op named in the fixture with its arguments.
    static func run(_ c: Case) throws -> Tensor {
        let x = c.inputs
        let a = c.args
        func int(_ k: String) -> Int { a[k] as! Int }
        func ints(_ k: String) -> [Int] { a[k] as? [Int] ?? [] }
        func float(_ k: String) -> Float { Float(a[k] as! Double) }
        func keep() -> Bool { a["keepdim"] as? Bool ?? false }
        func reduction() throws -> Reduction { try Reduction(parsing: a["reduction"] as? String ?? "mean", op: c.op) }
        switch c.op {
        case "add": return try x[0] + x[1]
        case "sub": return try x[0] - x[1]
        case "mul": return try x[0] * x[1]
        case "div": return try x[0] / x[1]
        case "pow": return try x[0].pow(x[1])
        case "maximum": return try x[0].maximum(x[1])
        case "minimum": return try x[0].minimum(x[1])
        case "add_scalar": return try x[0] + float("scalar")
        case "mul_scalar": return try x[0] * float("scalar")
        case "div_scalar": return try x[0] / float("scalar")
        case "rsub_scalar": return try float("scalar") - x[0]
        case "rdiv_scalar": return try float("scalar") / x[0]
        case "pow_scalar": return try x[0].pow(float("exponent"))
        case "neg": return try x[0].neg()
        case "exp": return try x[0].exp()
        case "log": return try x[0].log()
        case "log1p": return try x[0].log1p()
        case "sqrt": return try x[0].sqrt()
        case "square": return try x[0].square()
        case "abs": return try x[0].abs()
        case "sigmoid": return try x[0].sigmoid()
        case "tanh": return try x[0].tanh()
        case "relu": return try x[0].relu()
        case "clamp": return try x[0].clamp(min: a["min"].map { Float($0 as! Double) }, max: a["max"].map { Float($0 as! Double) })
        case "sum": return try x[0].sum(ints("axes"), keepdim: keep())
        case "mean": return try x[0].mean(ints("axes"), keepdim: keep())
        case "max": return try x[0].max(ints("axes"), keepdim: keep())
        case "min": return try x[0].min(ints("axes"), keepdim: keep())
        case "var": return try x[0].variance(ints("axes"), correction: int("correction"), keepdim: keep())
        case "std": return try x[0].std(ints("axes"), correction: int("correction"), keepdim: keep())
        case "argmax": return try x[0].argmax(int("axis"), keepdim: keep())
        case "argmin": return try x[0].argmin(int("axis"), keepdim: keep())
        case "softmax": return try x[0].softmax(int("dim"))
        case "log_softmax": return try x[0].logSoftmax(int("dim"))
        case "logsumexp": return try x[0].logsumexp(ints("dims"), keepdim: keep())
        case "matmul": return try x[0].matmul(x[1])
        case "reshape": return try x[0].reshape(ints("shape"))
        case "permute": return try x[0].permute(ints("dims"))
        case "transpose": return try x[0].transpose(int("dim0"), int("dim1"))
        case "expand": return try x[0].expand(ints("shape"))
        case "narrow": return try x[0].narrow(int("dim"), start: int("start"), length: int("length"))
        case "slice": return try x[0].slice(int("dim"), start: int("start"), end: int("end"), step: int("step"))
        case "index_select": return try x[0].indexSelect(int("dim"), ints("indices"))
        case "gather": return try x[0].gather(int("dim"), tensor(a["index"]))
        case "cat": return try Tensor.cat(x, dim: int("dim"))
        case "stack": return try Tensor.stack(x, dim: int("dim"))
        case "where": return try Tensor.where(tensor(a["condition"]), x[0], x[1])
        case "cross_entropy":
            return try x[0].crossEntropy(x[1], labelSmoothing: a["label_smoothing"].map { Float($0 as! Double) } ?? 0, reduction: reduction())
        case "kl_div": return try x[0].klDiv(x[1], reduction: reduction(), logTarget: a["log_target"] as? Bool ?? false)
        case "mse": return try x[0].mse(x[1], reduction: reduction())
        default: throw TensorError("golden", "unknown op '\(c.op)' in case \(c.name)")
        }
    }

    func testFixtureAgainstPyTorch() throws {
        let cases = try Self.loadCases()
        XCTAssertGreaterThan(cases.count, 60)
        var ops = Set<String>()
        for c in cases {
            ops.insert(c.op)
            for x in c.inputs { x.grad = nil }
            let out = try Self.run(c)
            // Float32 against a float64 reference: a few ulps of relative error.
            assertClose(out, c.output.toArray(), shape: c.output.shape, atol: 1e-5, rtol: 1e-5, "\(c.name) output")
            guard let up = c.upstream else { continue }
            try out.backward(up)
            for (i, (x, g)) in zip(c.inputs, c.grads).enumerated() {
                guard let g else { continue }
                guard let grad = x.grad else { XCTFail("\(c.name): input \(i) got no gradient"); continue }
                assertClose(grad, g.toArray(), shape: g.shape, atol: 1e-5, rtol: 1e-5, "\(c.name) grad \(i)")
            }
        }
        XCTAssertGreaterThanOrEqual(ops.count, 50, "the fixture should cover most ops")
    }
}

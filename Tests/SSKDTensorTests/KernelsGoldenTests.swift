import Foundation
import XCTest
@testable import SSKDTensor

/// Forward and backward values of the CNN kernels against torch.nn.functional
/// (fixtures from scripts/reference/kernels_golden.py).
final class KernelsGoldenTests: XCTestCase {
    struct Case {
        let name: String
        let params: [String: Any]
        let raw: [String: Any]
        func tensor(_ group: String, _ key: String) throws -> Tensor? {
            guard let g = raw[group] as? [String: Any], let t = g[key] as? [String: Any] else { return nil }
            return try decode(t)
        }
        func tensor(_ key: String) throws -> Tensor? {
            guard let t = raw[key] as? [String: Any] else { return nil }
            return try decode(t)
        }
        func decode(_ t: [String: Any]) throws -> Tensor {
            let shape = (t["shape"] as! [NSNumber]).map { $0.intValue }
            let data = (t["data"] as! [NSNumber]).map { $0.floatValue }
            return try Tensor(data, shape: shape)
        }
        func ints(_ key: String) -> [Int] { (params[key] as! [NSNumber]).map { $0.intValue } }
        func bool(_ key: String) -> Bool { (params[key] as! NSNumber).boolValue }
        func float(_ key: String) -> Float { (params[key] as! NSNumber).floatValue }
    }

    func load(_ family: String) throws -> [Case] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "kernels_\(family)", withExtension: "json", subdirectory: "Fixtures"),
                                "missing fixture kernels_\(family).json")
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        XCTAssertFalse(cases.isEmpty)
        return cases.map { Case(name: $0["name"] as! String, params: $0["params"] as? [String: Any] ?? [:], raw: $0) }
    }

    /// max |a - b| <= 1e-4 * max(1, max |b|), with the shapes equal.
    func assertClose(_ a: Tensor?, _ b: Tensor?, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let a, let b else { XCTFail("\(what): missing tensor (ours \(a == nil ? "nil" : "set"), torch \(b == nil ? "nil" : "set"))", file: file, line: line); return }
        XCTAssertEqual(a.shape, b.shape, "\(what): shape", file: file, line: line)
        guard a.shape == b.shape else { return }
        var scale: Float = 1, err: Float = 0
        for i in 0..<b.count { scale = Swift.max(scale, Swift.abs(b.data[i])); err = Swift.max(err, Swift.abs(a.data[i] - b.data[i])) }
        XCTAssertLessThanOrEqual(err, 1e-4 * scale, "\(what): max abs error \(err) (scale \(scale))", file: file, line: line)
    }

    /// Runs `f` on the case's inputs (all requiring grad), backpropagates the stored dy and compares.
    func check(_ c: Case, _ names: [String], _ f: ([String: Tensor]) throws -> Tensor) throws {
        var xs: [String: Tensor] = [:]
        for n in names { if let t = try c.tensor("inputs", n) { xs[n] = t.requiringGrad() } }
        let y = try f(xs)
        assertClose(y, try c.tensor("out"), "\(c.name) forward")
        try y.backward(try XCTUnwrap(c.tensor("dy")))
        for (n, t) in xs { assertClose(t.grad, try c.tensor("grads", n), "\(c.name) d\(n)") }
    }

    func testConv2dMatchesTorch() throws {
        let cases = try load("conv")
        XCTAssertGreaterThanOrEqual(cases.count, 16)
        for c in cases {
            try check(c, ["x", "w", "b"]) { t in
                try conv2d(t["x"]!, t["w"]!, bias: t["b"], stride: c.ints("stride"), padding: c.ints("padding"),
                           dilation: c.ints("dilation"), groups: (c.params["groups"] as! NSNumber).intValue)
            }
        }
    }

    func testBatchNormMatchesTorch() throws {
        for c in try load("bn") {
            let rm = try XCTUnwrap(c.tensor("running_mean_in")), rv = try XCTUnwrap(c.tensor("running_var_in"))
            try check(c, ["x", "w", "b"]) { t in
                try batchNorm2d(t["x"]!, runningMean: rm, runningVar: rv, weight: t["w"], bias: t["b"], training: c.bool("training"),
                                momentum: c.float("momentum"), eps: c.float("eps"))
            }
            assertClose(rm, try c.tensor("running_mean_out"), "\(c.name) running_mean")
            assertClose(rv, try c.tensor("running_var_out"), "\(c.name) running_var")
        }
    }

    func testPoolingMatchesTorch() throws {
        for c in try load("pool") {
            try check(c, ["x"]) { t in
                switch c.params["kind"] as! String {
                case "max":
                    return try maxPool2d(t["x"]!, kernel: c.ints("kernel"), stride: c.ints("stride"), padding: c.ints("padding"),
                                         dilation: c.ints("dilation"), ceilMode: c.bool("ceil_mode"))
                case "avg":
                    return try avgPool2d(t["x"]!, kernel: c.ints("kernel"), stride: c.ints("stride"), padding: c.ints("padding"),
                                         ceilMode: c.bool("ceil_mode"), countIncludePad: c.bool("count_include_pad"))
                default:
                    return try adaptiveAvgPool2d(t["x"]!, outputSize: c.ints("output_size"))
                }
            }
        }
    }

    func testActivationsMatchTorch() throws {
        let cases = try load("act")
        XCTAssertEqual(Set(cases.map(\.name)), ["relu", "relu6", "silu", "sigmoid", "hardswish", "hardsigmoid"])
        for c in cases {
            try check(c, ["x"]) { t in
                let x = t["x"]!
                switch c.name {
                case "relu": return try x.relu()
                case "relu6": return try x.relu6()
                case "silu": return try x.silu()
                case "sigmoid": return try x.sigmoid()
                case "hardswish": return try x.hardswish()
                default: return try x.hardsigmoid()
                }
            }
        }
    }

    func testLinearMatchesTorch() throws {
        for c in try load("linear") {
            try check(c, ["x", "w", "b"]) { t in try linear(t["x"]!, t["w"]!, bias: t["b"]) }
        }
    }
}

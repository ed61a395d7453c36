import XCTest
@testable import SSKDTensor

final class InPlaceActivationTests: XCTestCase {
    func testInPlaceActivationsMatchOutOfPlace() throws {
        let cases: [(String, (Tensor) throws -> Tensor, (Tensor) throws -> Tensor)] = [
            ("relu", { try $0.relu() }, { try $0.relu_() }),
            ("relu6", { try $0.relu6() }, { try $0.relu6_() }),
            ("silu", { try $0.silu() }, { try $0.silu_() }),
            ("hardswish", { try $0.hardswish() }, { try $0.hardswish_() }),
            ("hardsigmoid", { try $0.hardsigmoid() }, { try $0.hardsigmoid_() }),
        ]
        for (name, outOfPlace, inPlace) in cases {
            // 37 elements: full SIMD vectors and a tail; values across every kink (0, +-3, 6).
            let x = try Tensor.uniform([37], low: -8, high: 8, generator: Generator(seed: 5))
            let expected = try outOfPlace(x).toArray()
            let view = try x.reshape([37])
            let y = try inPlace(x)
            XCTAssertTrue(y === x, name)
            XCTAssertEqual(x.toArray(), expected, name)
            XCTAssertEqual(view.toArray(), expected, "\(name): views share the overwritten storage")
        }
    }

    func testInPlaceRefusesTensorsInAGraph() throws {
        let x = try Tensor.ones([4]).requiringGrad()
        XCTAssertThrowsError(try x.relu6_())
        XCTAssertEqual(x.toArray(), [1, 1, 1, 1])
        // Under no-grad there is no graph to protect.
        try withNoGrad { try x.silu_() }
        XCTAssertEqual(x.toArray()[0], 1 / (1 + expf(-1)), accuracy: 1e-6)
    }
}

final class ProfilerTests: XCTestCase {
    override func tearDown() { Profiler.enabled = false; Profiler.reset() }

    func testFamiliesOfForwardBackwardAndMeasuredRegions() throws {
        Profiler.enabled = true
        Profiler.reset()
        let x = try Tensor.randn([2, 4, 6, 6], generator: Generator(seed: 1)).requiringGrad()
        let dw = try Tensor.randn([4, 1, 3, 3], generator: Generator(seed: 2)).requiringGrad()
        let pw = try Tensor.randn([8, 4, 1, 1], generator: Generator(seed: 3)).requiringGrad()
        Profiler.mark()
        var y = try conv2d(x, dw, padding: [1], groups: 4)
        y = try batchNorm2d(y, runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true)
        y = try conv2d(y.silu(), pw)
        let loss = try y.sum()
        let forwardBefore = Profiler.entries.values.reduce(0) { $0 + $1.forwardCalls }
        XCTAssertGreaterThanOrEqual(forwardBefore, 5)  // dw conv, bn, silu, 1x1 conv, sum (+ views)
        try loss.backward()
        Profiler.measure("optimizer step") { }
        let e = Profiler.entries
        XCTAssertEqual(e["depthwise conv"]?.forwardCalls, 1)
        XCTAssertEqual(e["depthwise conv"]?.backwardCalls, 1)
        XCTAssertEqual(e["conv 1x1"]?.forwardCalls, 1)
        XCTAssertEqual(e["batch norm"]?.backwardCalls, 1)
        XCTAssertEqual(e["activations"]?.forwardCalls, 1)
        XCTAssertNotNil(e["optimizer step"])
        // Ops run inside backward closures are not counted as forward ops.
        let forwardCalls = e.values.reduce(0) { $0 + $1.forwardCalls }
        XCTAssertEqual(forwardCalls, forwardBefore, "\(e)")
        XCTAssertTrue(Profiler.report(iterations: 1).contains("| depthwise conv |"))
    }

    func testDisabledProfilerRecordsNothing() throws {
        Profiler.enabled = false
        Profiler.reset()
        let x = try Tensor.randn([3, 3]).requiringGrad()
        try x.relu().sum().backward()
        XCTAssertTrue(Profiler.entries.isEmpty)
    }

    func testFamilyClassification() {
        XCTAssertEqual(Profiler.family("conv2d", [[32, 144, 24, 24], [144, 1, 3, 3]], [32, 144, 24, 24]), "depthwise conv")
        XCTAssertEqual(Profiler.family("conv2d", [[32, 24, 24, 24], [144, 24, 1, 1]], [32, 144, 24, 24]), "conv 1x1")
        XCTAssertEqual(Profiler.family("conv2d", [[32, 144, 1, 1], [6, 144, 1, 1], [6]], [32, 6, 1, 1]), "SE")
        XCTAssertEqual(Profiler.family("conv2d", [[32, 3, 96, 96], [32, 3, 3, 3]], [32, 32, 48, 48]), "conv dense (stem)")
        XCTAssertEqual(Profiler.family("sigmoid", [[32, 144, 1, 1]], [32, 144, 1, 1]), "SE")
        XCTAssertEqual(Profiler.family("mul", [[32, 144, 1, 1], [32, 144, 24, 24]], [32, 144, 24, 24]), "SE")
        XCTAssertEqual(Profiler.family("silu", [[32, 144, 24, 24]], [32, 144, 24, 24]), "activations")
        XCTAssertEqual(Profiler.family("cross_entropy", [[32, 10], [32]], []), "loss")
    }
}

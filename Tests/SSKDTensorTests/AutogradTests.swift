import Foundation
import XCTest
import SSKDTensor

/// Graph recording, accumulation, no-grad, detach, graph release and retainGraph.
final class AutogradTests: XCTestCase {
    func testGradientAccumulatesAcrossBackwardCalls() throws {
        let x = try Tensor([1, 2, 3]).requiringGrad()
        try (x * x).sum().backward()
        assertClose(x.grad!, [2, 4, 6])
        try (x * x).sum().backward()
        assertClose(x.grad!, [4, 8, 12])
        x.zeroGrad()
        XCTAssertNil(x.grad)
        try x.mul(3).sum().backward()
        assertClose(x.grad!, [3, 3, 3])
    }

    func testNoGradRecordsNothing() throws {
        let x = try Tensor([1, 2]).requiringGrad()
        let y = try withNoGrad { try (x * x).sum() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertNil(y.gradFn)
        XCTAssertTrue(GradMode.isEnabled, "grad mode is restored after the scope")
        // Restored even when the body throws.
        XCTAssertThrowsError(try withNoGrad { try x.sum(3) })
        XCTAssertTrue(GradMode.isEnabled)
        let z = try (x * x).sum()
        XCTAssertEqual(z.gradFn?.name, "sum")
        XCTAssertTrue(z.requiresGrad)
        XCTAssertFalse(z.isLeaf)
        XCTAssertTrue(x.isLeaf)
    }

    func testOpsOnConstantsRecordNothing() throws {
        let a = try Tensor([1, 2]), b = try Tensor([3, 4])
        let c = try (a * b).exp().sum()
        XCTAssertFalse(c.requiresGrad)
        XCTAssertNil(c.gradFn)
        assertTensorError("backward") { try c.backward() }
    }

    func testDetachCutsTheGraph() throws {
        let x = try Tensor([1, 2, 3]).requiringGrad()
        let d = x.detach()
        XCTAssertFalse(d.requiresGrad)
        XCTAssertNil(d.gradFn)
        // z = x * detach(x): the gradient is detach(x) only, not 2x.
        try (x * d).sum().backward()
        assertClose(x.grad!, [1, 2, 3])
    }

    func testGraphIsReleasedAfterBackward() throws {
        let x = try Tensor([1, 2]).requiringGrad()
        let y = try x.exp()
        let z = try y.sum()
        try z.backward()
        assertTensorError("backward", "second time") { try z.backward() }
        // The intermediate's node was released too.
        assertTensorError("backward", "second time") { try y.backward(Tensor.ones([2])) }
        // A fresh graph from the same leaf works.
        try x.exp().sum().backward()
        assertClose(x.grad!, x.toArray().map { 2 * expf($0) })
    }

    func testRetainGraph() throws {
        let x = try Tensor([0.5, -1]).requiringGrad()
        let z = try x.tanh().sum()
        try z.backward(retainGraph: true)
        try z.backward()
        assertClose(x.grad!, x.toArray().map { 2 * (1 - tanhf($0) * tanhf($0)) })
        assertTensorError("backward") { try z.backward() }
    }

    func testDiamondGraph() throws {
        // y = 2x; z = y*y + y: dz/dx = (2y + 1) * 2, with y reaching z by two paths.
        let x = try Tensor([1, -2, 0.5]).requiringGrad()
        let y = try x.mul(2)
        let z = try (y * y + y).sum()
        try z.backward()
        assertClose(x.grad!, x.toArray().map { (4 * $0 + 1) * 2 })
        // x used directly twice in one op and again elsewhere.
        let w = try Tensor([3]).requiringGrad()
        try (w * w + w.exp() * w).sum().backward()
        assertClose(w.grad!, [6 + expf(3) * 4], rtol: 1e-5)
    }

    func testBackwardWithExplicitGradient() throws {
        let x = try Tensor([1, 2, 3, 4], shape: [2, 2]).requiringGrad()
        let y = try x * x
        try y.backward(Tensor([1, 0, 0.5, 2], shape: [2, 2]))
        assertClose(x.grad!, [2, 0, 3, 16])
        // backward() on a leaf seeds its own gradient.
        let l = try Tensor([5]).requiringGrad()
        try l.backward()
        assertClose(l.grad!, [1])
    }

    func testOnlyLeavesThatRequireGradGetGradients() throws {
        let x = try Tensor([1, 2]).requiringGrad()
        let c = try Tensor([3, 4])
        let mid = try x * c
        try mid.sum().backward()
        XCTAssertNil(c.grad)
        XCTAssertNil(mid.grad, "non-leaf gradients are not kept")
        assertClose(x.grad!, [3, 4])
    }

    func testLongChainBackward() throws {
        // The topological sort is iterative: thousands of ops in a chain are fine.
        let x = try Tensor([1]).requiringGrad()
        var y = x
        for _ in 0..<3000 { y = try y.mul(1.0001) }
        try y.sum().backward()
        XCTAssertEqual(Double(x.grad!.toArray()[0]), pow(1.0001, 3000), accuracy: 1e-3)
        // And a chain of 50k ops.
        let w = try Tensor([2]).requiringGrad()
        var v = w
        for _ in 0..<50_000 { v = try v.add(1) }
        try v.sum().backward()
        assertClose(w.grad!, [1])
    }

    func testGradcheckCatchesAWrongGradient() throws {
        // A deliberately wrong op (forward x^2, "gradient" from x^3's derivative would be caught);
        // here: detach half the computation so autograd misses a term.
        let x = try Tensor([0.3, 0.7]).requiringGrad()
        let report = try gradcheck([x]) { xs in try xs[0] * xs[0].detach() }
        XCTAssertFalse(report.passed)
        XCTAssertFalse(report.failures.isEmpty)
        XCTAssertTrue(report.description.contains("failed"))
    }
}

/// Graphs that are never backpropagated are freed (no reference cycles, no deep recursion).
final class GraphLifetimeTests: XCTestCase {
    func testUnusedGraphsAreFreed() throws {
        let x = try Tensor([0.1, 0.2, 0.3]).requiringGrad()
        weak var weakOut: Tensor?
        weak var weakMid: Tensor?
        do {
            let mid = try x.exp().sqrt().sigmoid().tanh().relu().softmax(0).logSoftmax(0)
            let out = try (mid / x).pow(x)
            weakOut = out
            weakMid = mid
            XCTAssertNotNil(weakOut)
        }
        XCTAssertNil(weakOut, "an unused graph must not keep its output alive")
        XCTAssertNil(weakMid)
    }

    func testRetainedGraphIsFreedWhenDropped() throws {
        let x = try Tensor([1, 2]).requiringGrad()
        weak var weakOut: Tensor?
        do {
            let out = try x.exp().sum()
            try out.backward(retainGraph: true)
            weakOut = out
        }
        XCTAssertNil(weakOut)
    }

    func testVeryLongUnusedChainIsFreedWithoutStackOverflow() throws {
        let x = try Tensor([1]).requiringGrad()
        do {
            var y = x
            for _ in 0..<200_000 { y = try y.add(0) }
            XCTAssertEqual(y.gradFn?.name, "add")
        }
        XCTAssertNil(x.grad)
    }
}

/// Grad mode is per thread and follows the caller into parallel workers.
final class GradModeThreadTests: XCTestCase {
    func testNoGradOnAnotherThreadDoesNotAffectThisOne() throws {
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            withNoGrad {
                started.signal()
                release.wait()  // stay inside the no-grad scope while the main thread records
            }
            done.signal()
        }
        started.wait()
        let x = try Tensor([1, 2]).requiringGrad()
        let y = try (x * x).sum()
        release.signal()
        done.wait()
        XCTAssertTrue(y.requiresGrad, "a no-grad scope on another thread must not disable recording here")
        try y.backward()
        assertClose(x.grad!, [2, 4])
    }

    func testParallelWorkersInheritTheCallersMode() {
        var seen = [Bool](repeating: true, count: 64)
        seen.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            withNoGrad { parallelTasks(64) { i in p[i] = GradMode.isEnabled } }
        }
        XCTAssertTrue(seen.allSatisfy { !$0 })
        XCTAssertTrue(GradMode.isEnabled)
        seen.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            parallelFor(64 * 4, grain: 4) { r in for i in r where i % 4 == 0 { p[i / 4] = GradMode.isEnabled } }
        }
        XCTAssertTrue(seen.allSatisfy { $0 })
    }
}

final class RecordTests: XCTestCase {
    func testRecordingAnOpThatReturnsItsInput() throws {
        let x = try Tensor([1, 2]).requiringGrad()
        let y = record(x, "identity", [x]) { g in [g] }
        XCTAssertFalse(y === x)
        XCTAssertTrue(x.isLeaf)
        XCTAssertEqual(y.gradFn?.name, "identity")
        try y.sum().backward()
        assertClose(x.grad!, [1, 1])
    }
}

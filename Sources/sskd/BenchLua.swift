import ArgumentParser
import Dispatch
import Foundation
import SSKDLua
import SSKDTensor

/// `sskd bench lua`: the cost of calling Swift from Lua (ns per call).
/// Nanoseconds of CPU time used by this thread (robust to other processes sharing the cores).
private func threadCPUNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct BenchLua: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lua", abstract: "Lua -> Swift call overhead: a trivial method and a small tensor op.")

    @Option(help: "Calls per measurement.")
    var iterations: Int = 1_000_000

    func run() throws {
        let host = try LuaHost()
        try host.execute("x = torch.zeros(2, 2); a = torch.ones(4); b = torch.ones(4); n = \(iterations)")
        func time(_ label: String, _ body: String, scale: Int = 1) throws -> Double {
            let code = "local x, a, b, n = x, a, b, n // \(scale)\nfor i = 1, n do \(body) end"
            try host.execute(code)  // warm-up
            var best = Double.infinity
            for _ in 0..<3 {
                let t0 = threadCPUNanos()
                try host.execute(code)
                let dt = Double(threadCPUNanos() - t0)
                best = min(best, dt / Double(iterations / scale))
            }
            return best
        }
        let empty = try time("empty loop", "")
        let luaFn = try time("Lua function", "local _ = math.abs(i)")
        let dim = try time("x:dim()", "local _ = x:dim()")
        let field = try time("x.ndim", "local _ = x.ndim")
        let detach = try time("x:detach()", "local _ = x:detach()", scale: 10)
        let add = try time("a + b (4 floats)", "local _ = a + b", scale: 10)
        let method = try time("a:add(b) (4 floats)", "local _ = a:add(b)", scale: 10)
        let sum = try time("a:sum() (4 floats)", "local _ = a:sum()", scale: 10)
        // The same ops called from Swift directly: the part of the Lua figures that is the op itself.
        func swiftTime(_ body: () throws -> Void) rethrows -> Double {
            let n = iterations / 10
            var best = Double.infinity
            for _ in 0..<3 {
                let t0 = threadCPUNanos()
                for _ in 0..<n { try body() }
                best = min(best, Double(threadCPUNanos() - t0) / Double(n))
            }
            return best
        }
        let ta = try Tensor.ones([4]), tb = try Tensor.ones([4])
        let swiftAdd = try swiftTime { _ = try ta.add(tb) }
        let swiftSum = try swiftTime { _ = try ta.sum() }
        func row(_ name: String, _ ns: Double) { print(name.padding(toLength: 38, withPad: " ", startingAt: 0) + String(format: "%8.1f ns/call", ns - empty)) }
        print("Lua -> Swift call overhead (thread CPU time, best of 3, loop overhead \(String(format: "%.1f", empty)) ns subtracted)")
        row("math.abs(i) (C builtin, reference)", luaFn)
        row("x:dim() (trivial method)", dim)
        row("x.ndim (field via __index)", field)
        row("x:detach() (new userdata + its __gc)", detach)
        row("a + b (4-element tensors)", add)
        row("a:add(b) (4-element tensors)", method)
        row("a:sum() (4-element tensor)", sum)
        print(String(format: "Swift direct: a.add(b) %.1f ns, a.sum() %.1f ns -> bridge cost of a:add(b) %.1f ns", swiftAdd, swiftSum, method - empty - swiftAdd))
    }
}

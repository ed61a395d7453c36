// Export from Lua: `m:export_onnx` on every model_variants plugin and on a module written in Lua
// (its forward is traced through to the layers and ops it uses), each checked by onnxruntime.

import Foundation
import SSKDLua
import SSKDNN
import SSKDTensor
import XCTest
@testable import SSKDExport

final class LuaModelExportTests: ONNXCheckCase {
    func makeHost() throws -> LuaHost {
        let host = try LuaHost()
        XCTAssertEqual(host.loadPlugins(from: LuaHost.pluginDirectories()), [], "shipped plugins load")
        return host
    }

    /// Runs Lua `code` defining `make()` and returns the Module it makes.
    func module(_ host: LuaHost, _ code: String) throws -> Module {
        try host.execute(code)
        let make = try XCTUnwrap(host.reference("make"))
        guard case .object(let m as Module)? = try host.call(.ref(make), []).first else { throw LuaError("make() did not return a Module") }
        return m
    }

    func testEveryModelVariantPluginMatchesOnnxRuntime() throws {
        let host = try makeHost()
        let names = try host.evaluate("local t = {} for k in pairs(model_variants) do t[#t + 1] = k end table.sort(t) return table.concat(t, ',')")[0]
            .split(separator: ",").map(String.init)
        XCTAssertGreaterThanOrEqual(names.count, 8, "\(names)")
        for name in names {
            let m = try module(host, "function make() return model_variants['\(name)']{classes = 10} end")
            try randomizeBatchNorms(m, seed: 60)
            try checkWithOnnxRuntime(m, name, inputs: [try Tensor.randn([1, 3, 32, 32], generator: Generator(seed: 61)),
                                                       try fashionBatch(2, size: 32, channels: 3)], fold: name.hasPrefix("mobilenet"))
        }
    }

    func testLuaWrittenModuleExportsFromLuaAndMatchesOnnxRuntime() throws {
        let host = try makeHost()
        let path = dir.appendingPathComponent("lua_net.onnx").path
        let m = try module(host, """
        local Residual = nn.Module{
          name = "Residual",
          init = function(self, c)
            self.conv = nn.Conv2d(c, c, 3, {padding = 1})
            self.bn = nn.BatchNorm2d(c)
            self.gain = torch.ones(1):requires_grad_()
            self.scale = 0.5
          end,
          forward = function(self, x) return (self.bn(self.conv(x)) * self.gain * self.scale + x):relu() end,
        }
        local Net = nn.Module{
          name = "Net",
          init = function(self)
            self.stem = nn.Conv2d(3, 8, 3, {padding = 1, stride = 2})
            self.block = Residual(8)
            self.head = nn.Sequential{nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)}
          end,
          forward = function(self, x)
            local y = self.block(self.stem(x))
            return self.head(y:sigmoid() * y):softmax(1)
          end,
        }
        function make()
          local net = Net()
          summary = net:export_onnx('\(path)', {input = {2, 3, 16, 16}, fold_batchnorm = true})
          return net
        end
        """)
        XCTAssertEqual(try host.evaluate("return summary.path, summary.ops.Conv, summary.ops.Softmax, summary.output_shape[2]"),
                       [path, "2", "1", "5"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        try randomizeBatchNorms(m, seed: 70)
        try checkWithOnnxRuntime(m, "lua_net", inputs: [try Tensor.randn([2, 3, 16, 16], generator: Generator(seed: 71)),
                                                        try Tensor.randn([1, 3, 16, 16], generator: Generator(seed: 72))])
    }

    func testUnsupportedLayerInLuaNamesItsPath() throws {
        let host = try makeHost()
        _ = try module(host, """
        local Picky = nn.Module{name = "Picky", forward = function(self, x) return x:index_select(1, {0, 2}) end}
        function make() return nn.Sequential{nn.Linear(4, 3), nn.Sequential{nn.ReLU(), Picky()}} end
        """)
        XCTAssertThrowsError(try host.execute("make():export_onnx('\(dir.appendingPathComponent("x.onnx").path)', {input = {1, 4}})")) { e in
            let s = "\(e)"
            XCTAssertTrue(s.contains("op index_select") && s.contains("'1.1' (Picky)"), s)
        }
        XCTAssertThrowsError(try host.execute("make():export_onnx('x.onnx', {})")) { e in XCTAssertTrue("\(e)".contains("'input'"), "\(e)") }
        XCTAssertThrowsError(try host.execute("make():export_onnx('x.onnx', {input = {1, 4}, opset = 99})")) { e in XCTAssertTrue("\(e)".contains("opset 99"), "\(e)") }
        XCTAssertThrowsError(try host.execute("make():export_onnx('x.onnx', {input = {1, 4}, dynamic = true})")) { e in XCTAssertTrue("\(e)".contains("dynamic"), "\(e)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.onnx").path))
    }
}

import ArgumentParser
import Foundation
import SSKDLua
import SSKDNN

/// `sskd export MODEL --weights W.safetensors [--input 3x96x96] --out model.onnx`: a trained model as ONNX.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Writes a model with its trained weights as an ONNX file (eval mode, checked against onnxruntime in the tests).",
        discussion: """
        MODEL is a constructor of the `models` namespace (efficientnet_b0, mobilenet_v2, ...) or a model_variants plugin; \
        with --weights its state dict is loaded strictly first. The number of classes is read from the weights' \
        classifier when --classes is not given. The input's batch dimension is the symbol "batch" unless --static-batch.
        Example: sskd export efficientnet_b0 --weights runs/quickstart/kd/best.safetensors --input 3x96x96 --out student.onnx
        """)

    @Argument(help: "The model name.")
    var model: String

    @Option(help: ArgumentHelp("The trained weights (safetensors, as written by fit/distill or m:save).", valueName: "FILE"))
    var weights: String?

    @Option(help: ArgumentHelp("Input size CxHxW.", valueName: "CxHxW"))
    var input: String = "3x96x96"

    @Option(help: "Number of classes (default: from the weights' classifier, else 10).")
    var classes: Int?

    @Option(help: ArgumentHelp("The ONNX file to write.", valueName: "FILE"))
    var out: String

    @Option(help: "ONNX opset (14...21).")
    var opset: Int = 17

    @Option(help: "Batch size of the traced input (and of the file with --static-batch).")
    var batch: Int = 1

    @Flag(help: "A fixed batch size instead of a dynamic one.")
    var staticBatch = false

    @Flag(help: "Fold each BatchNorm2d into the Conv2d before it.")
    var foldBatchnorm = false

    @Option(name: .customLong("plugins"), help: ArgumentHelp("An extra plugin folder (repeatable).", valueName: "DIR"))
    var pluginDirs: [String] = []

    func run() throws {
        let size = input.lowercased().split(separator: "x").compactMap { Int($0) }
        guard size.count == 3, size.allSatisfy({ $0 > 0 }) else { throw ValidationError("--input expects CxHxW, e.g. 3x96x96, got '\(input)'") }
        guard batch > 0 else { throw ValidationError("--batch must be positive, got \(batch)") }
        var classCount = classes ?? 10
        if classes == nil, let weights {
            // The classifier's output size: the last Linear of the shipped heads.
            let sd: StateDict
            do { sd = try SafeTensors.read(weights) } catch { fputs("sskd export: \(error)\n", stderr); throw ExitCode(1) }
            let heads = ["classifier.1.weight", "classifier.weight", "fc.weight", "head.weight"]
            guard let w = heads.lazy.compactMap({ sd[$0] }).first(where: { $0.dim == 2 }) else {
                fputs("sskd export: \(weights) has none of \(heads.joined(separator: ", ")); pass --classes\n", stderr)
                throw ExitCode(1)
            }
            classCount = w.shape[0]
        }
        let host = try LuaHost()
        for p in host.loadPlugins(from: LuaHost.pluginDirectories(extra: pluginDirs)) { fputs("sskd: plugin error: \(p)\n", stderr) }
        host.setArguments(script: "export", settings: [("model", model), ("classes", String(classCount)), ("weights", weights ?? ""), ("out", out),
                                                       ("opset", String(opset)), ("dynamic", staticBatch ? "false" : "true"),
                                                       ("fold", foldBatchnorm ? "true" : "false")],
                          arguments: ([batch] + size).map(String.init))
        do {
            try host.execute(Export.script, chunkname: "=export")
        } catch {
            fputs("sskd export: \(error)\n", stderr)
            throw ExitCode(1)
        }
    }

    static let script = """
    local name = tostring(arg.model)
    local ctor = (type(models) == "table" and name ~= "names" and rawget(models, name)) or rawget(model_variants, name)
    if not ctor then error("unknown model '" .. name .. "' (see sskd info names, or a model_variants plugin)", 0) end
    local shape = {tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])}
    local m = ctor{classes = tonumber(arg.classes), in_channels = shape[2]}
    if arg.weights ~= "" then m:load(arg.weights) end
    local s = m:export_onnx(arg.out, {input = shape, opset = tonumber(arg.opset), dynamic_batch = tostring(arg.dynamic) == "true",
                                      fold_batchnorm = tostring(arg.fold) == "true"})
    local dynamic = tostring(arg.dynamic) == "true"
    local function dims(t)
      local d = {dynamic and "batch" or tostring(t[1])}
      for i = 2, #t do d[#d + 1] = tostring(t[i]) end
      return "[" .. table.concat(d, ", ") .. "]"
    end
    local ops = {}
    for k, n in pairs(s.ops) do ops[#ops + 1] = k .. " " .. n end
    table.sort(ops)
    print(string.format("wrote %s: %.2f MB, %d nodes, %d initializers, input %s, output %s", s.path, s.bytes / 1e6, s.nodes,
      s.initializers, dims(shape), dims(s.output_shape)))
    print("ops: " .. table.concat(ops, ", "))
    """
}

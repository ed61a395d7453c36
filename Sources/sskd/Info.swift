import ArgumentParser
import Foundation
import SSKDData
import SSKDLua

/// `sskd info MODEL [--input 3x96x96]`: a model's summary.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prints a model's summary: its layer tree, and with --input the shapes, parameters and multiply-adds per layer.",
        discussion: "MODEL is a constructor of the `models` namespace (efficientnet_b0, mobilenet_v2, ...) or a model_variants plugin.")

    @Argument(help: "The model name.")
    var model: String

    @Option(help: ArgumentHelp("Input size CxHxW (e.g. 3x96x96).", valueName: "CxHxW"))
    var input: String?

    @Option(help: "Number of classes.")
    var classes: Int = 10

    @Option(name: .customLong("plugins"), help: ArgumentHelp("An extra plugin folder (repeatable).", valueName: "DIR"))
    var pluginDirs: [String] = []

    func run() throws {
        var size: [Int] = []
        if let input {
            guard let shape = ImageShape(parsing: input) else { throw ValidationError("--input expects CxHxW, e.g. 3x96x96, got '\(input)'") }
            size = [shape.channels, shape.height, shape.width]
        }
        let host = try LuaHost()
        for p in host.loadPlugins(from: LuaHost.pluginDirectories(extra: pluginDirs)) { fputs("sskd: plugin error: \(p)\n", stderr) }
        host.setArguments(script: "info", settings: [("model", model), ("classes", String(classes))], arguments: size.map(String.init))
        do {
            try host.execute(Info.script, chunkname: "=info")
        } catch {
            fputs("sskd info: \(error)\n", stderr)
            throw ExitCode(1)
        }
    }

    static let script = """
    local name = tostring(arg.model)
    local ctor = name ~= "names" and ((type(models) == "table" and rawget(models, name)) or rawget(model_variants, name))
    if not ctor then
      local names = {}
      for k in pairs(type(models) == "table" and models or {}) do if k ~= "names" then names[#names + 1] = k end end
      for k in pairs(model_variants) do names[#names + 1] = k end
      table.sort(names)
      error("unknown model '" .. name .. "' (available: " .. (#names > 0 and table.concat(names, ", ") or "none") .. ")", 0)
    end
    local m = ctor{classes = arg.classes, in_channels = arg[1]}
    if #arg == 3 and m.summary then
      print(m:summary{arg[1], arg[2], arg[3]})
    else
      print(m)
    end
    """
}

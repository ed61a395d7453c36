// Models by constructor name: recording how a model was built (`Module.constructor`: set by
// `models.*` and by the wrapper the prelude puts around every model_variants plugin), building
// it again from that record, and a trained model ready for inference from a run directory or a
// weights file (what `sskd predict` uses).
import CLua
import CLuaShim
import Foundation
import SSKDData
import SSKDNN
import SSKDTensor
import SSKDTrain

extension LuaCall {
    /// `name` with the scalar options of the table at `i` (none or nil: no options), leaving out
    /// `skipping`. Nil when an option is not a number, string or boolean (a table, a function):
    /// data could not call the constructor the same way again.
    func constructor(_ name: String, options i: Int32, skipping: Set<String> = []) -> ModelConstructor? {
        if isNoneOrNil(i) { return ModelConstructor(name) }
        guard lua_type(L, i) == LUA_TTABLE, lua_checkstack(L, 4) != 0 else { return nil }
        let t = lua_absindex(L, i), top = lua_gettop(L)
        defer { lua_settop(L, top) }
        var options: [String: ModelConstructor.Option] = [:]
        lua_pushnil(L)
        while lua_next(L, t) != 0 {
            // Only string keys are read as strings (lua_tolstring would turn a number key into a string in place).
            guard lua_type(L, -2) == LUA_TSTRING, let key = stringValue(-2) else { return nil }
            if !skipping.contains(key) {
                var n: lua_Integer = 0
                switch lua_type(L, -1) {
                case LUA_TBOOLEAN: options[key] = .bool(lua_toboolean(L, -1) != 0)
                case LUA_TNUMBER: options[key] = lua_isinteger(L, -1) != 0 && sskd_isinteger_value(L, -1, &n) != 0 ? .int(Int(n)) : .number(lua_tonumberx(L, -1, nil))
                case LUA_TSTRING: options[key] = .string(stringValue(-1) ?? "")
                default: return nil
                }
            }
            pop()
        }
        return ModelConstructor(name, options: options)
    }
}

enum ModelConstructorBindings {
    static func register() {
        let g = LuaLibraries.named("", doc: "Globals")
        // Captured and removed from the globals by the prelude (its model_variants wrapper).
        g.function("__sskd_set_constructor", "__sskd_set_constructor(m, name [, options])",
                   "records how a model was built (m.constructor); used by the model_variants wrapper") { c in
            guard let m = c.toObject(1, Module.self) else { return 0 }  // a plugin may return something else
            m.constructor = c.constructor(try c.string(2), options: 3)
            return 0
        }
    }
}

extension LuaHost {
    /// The dotted constructor path for a model name: `name` itself when it has a dot
    /// (`model_variants.small_cnn`), else `models.<name>` or `model_variants.<name>` (the
    /// built-in first, as `sskd info` and the recipes look names up).
    public func modelConstructorPath(_ name: String) throws -> String {
        if name.contains(".") {
            guard reference(name) != nil else { throw LuaError("unknown model constructor '\(name)'") }
            return name
        }
        for ns in ["models", "model_variants"] where name != "names" && reference(ns + "." + name) != nil { return ns + "." + name }
        let models = Models.names + ["efficientnet"]
        let variants = (try? evaluate("local t = {} for k in pairs(model_variants) do t[#t + 1] = k end table.sort(t) return table.concat(t, ', ')"))?.first ?? ""
        throw LuaError("unknown model '\(name)' (models: \(models.joined(separator: ", ")); model_variants: \(variants.isEmpty ? "none" : variants))")
    }

    /// Builds the model `constructor` names by calling it with its options (in protected mode).
    public func makeModel(_ constructor: ModelConstructor) throws -> Module {
        guard let make = reference(constructor.name) else {
            throw LuaError("unknown model constructor '\(constructor.name)' (a models.* name or a model_variants plugin; --plugins DIR adds plugin folders)")
        }
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        try call.reserve(Int32(constructor.options.count) + 6)
        try make.push()
        lua_createtable(L, 0, Int32(constructor.options.count))
        for (k, v) in constructor.options {
            switch v {
            case .int(let i): call.push(i)
            case .number(let d): call.push(d)
            case .string(let s): call.pushString(s)
            case .bool(let b): call.push(b)
            }
            call.setRawField(-2, k)
        }
        do { try pcall(nargs: 1, nresults: 1) } catch { throw LuaError("\(constructor): \(luaMessage(error))") }
        guard let m = call.toObject(-1, Module.self) else { throw LuaError("\(constructor) returned a \(call.typeName(-1)), not a Module") }
        return m
    }
}

/// A trained model ready for inference: built, weights loaded, in eval mode, with what its
/// images need (input shape, eval transform) and its class names.
public struct TrainedModel {
    public var model: Module
    public var constructor: ModelConstructor
    /// `[C, H, W]` the model takes.
    public var input: ImageShape
    public var classNames: [String]
    /// The eval transform images go through (before `Predictor` fits them to `input`).
    public var evalTransform: Transform?
    /// The weights file loaded.
    public var weights: String
}

/// What completes (or overrides) a run directory's model.json; with a weights file alone,
/// `model`, `input`, `classes`, `mean` and `std` are all needed.
public struct TrainedModelOptions {
    /// A `models.*` name or a `model_variants` plugin (built with `classes` and `in_channels`).
    public var model: String?
    public var input: ImageShape?
    public var classes: [String]?
    /// Per channel (or one for all), on images scaled to [0, 1]: the eval transform becomes
    /// `Normalize(mean, std)` (and the resize to `input`).
    public var mean: [Float]?
    public var std: [Float]?
    public init(model: String? = nil, input: ImageShape? = nil, classes: [String]? = nil, mean: [Float]? = nil, std: [Float]? = nil) {
        self.model = model; self.input = input; self.classes = classes; self.mean = mean; self.std = std
    }
}

extension LuaHost {
    /// Loads a trained model from a run directory (its model.json and best weights) or from a
    /// weights file (a checkpoint or a plain state dict) described by `options`. Every missing
    /// piece is an error that says which option gives it.
    public func loadTrainedModel(_ path: String, _ options: TrainedModelOptions = TrainedModelOptions()) throws -> TrainedModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw TrainError(path, "no such run directory or weights file") }
        if options.mean != nil || options.std != nil {
            guard let m = options.mean, let s = options.std else { throw TrainError("predict", "give both --mean and --std") }
            guard !m.isEmpty, m.count == s.count else { throw TrainError("predict", "--mean and --std need the same number of values, got \(m.count) and \(s.count)") }
        }
        let normalize = options.mean.map { Normalize(mean: $0, std: options.std!) }
        let record: ModelRecord?
        let weights: String
        if isDir.boolValue {
            let run = try ModelRecord.inRun(path, missingHint: "(fit and distill write it; older runs lack it): give the weights file, \((path as NSString).appendingPathComponent("best.safetensors")), with --model, --input, --classes, --mean and --std")
            record = run.record
            weights = run.weights
        } else {
            record = nil
            weights = path
            let missing = [("--model NAME", options.model == nil), ("--input CxHxW", options.input == nil),
                           ("--classes NAMES|COUNT", options.classes == nil), ("--mean/--std", options.mean == nil)].filter(\.1).map(\.0)
            guard missing.isEmpty else {
                throw TrainError(path, "a weights file says nothing about its model: give \(missing.joined(separator: ", ")) (or a run directory, whose model.json has them)")
            }
        }
        guard let input = options.input ?? record.map({ ImageShape(channels: $0.input[0], height: $0.input[1], width: $0.input[2]) }) else {
            throw TrainError(path, "give --input CxHxW")
        }
        guard let classes = options.classes ?? record?.classes, !classes.isEmpty else { throw TrainError(path, "give --classes (names or a count)") }

        let constructor: ModelConstructor
        if let name = options.model {
            constructor = ModelConstructor(try modelConstructorPath(name), options: ["classes": .int(classes.count), "in_channels": .int(input.channels)])
        } else if let c = record?.constructor {
            constructor = c
        } else {
            throw TrainError(path, "the run's model (\(record?.module ?? "?")) was assembled by hand, not built by a models.* constructor or a model_variants plugin: give --model NAME (a plugin that builds it)")
        }

        let evalTransform: Transform?
        if let normalize {
            evalTransform = normalize
        } else if let specs = record?.evalTransform {
            do { evalTransform = specs.isEmpty ? nil : try TransformSpec.make(specs) } catch {
                throw TrainError((path as NSString).appendingPathComponent(ModelRecord.fileName), "eval_transform: \(error)")
            }
        } else {
            throw TrainError(path, "the run's eval transform \(record?.evalTransformDescription ?? "") cannot be rebuilt from data (only resize, center_crop, normalize): give --mean and --std")
        }

        let model = try makeModel(constructor)
        do { try model.loadStateDict(try Checkpoint.weights(weights), strict: true) } catch {
            throw TrainError(weights, "does not fit \(constructor): \(error)")
        }
        model.eval()
        return TrainedModel(model: model, constructor: constructor, input: input, classNames: classes, evalTransform: evalTransform, weights: weights)
    }
}

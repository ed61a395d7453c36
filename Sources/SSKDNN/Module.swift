// The module tree: named parameters, buffers and submodules, train/eval mode, state dicts and a
// torch-like printed form. Layers subclass `Module`, register what they own in `init`, and
// override `forward` (and `extraRepr` for their settings line).
//
// Registration order is the state-dict order, exactly as in PyTorch: a module's own parameters,
// then its own buffers, then each child's entries under "<child>.".

import Foundation
import SSKDTensor

/// A layer or a network of layers (PyTorch's `nn.Module`).
///
/// Parameters are leaf tensors with `requiresGrad == true`; buffers (BatchNorm running
/// statistics) are state that is saved but not trained. Loading a state dict copies values into
/// the registered tensors in place, so references held by optimizers stay valid.
open class Module: CustomStringConvertible {
    /// This module's own parameters, in registration order.
    public private(set) var localParameters: [(name: String, tensor: Tensor)] = []
    /// This module's own buffers and the dtype they are saved as.
    public private(set) var localBuffers: [(name: String, tensor: Tensor, dtype: DType)] = []
    /// Direct submodules, in registration order.
    public private(set) var children: [(name: String, module: Module)] = []
    /// Training mode (dropout active, BatchNorm uses and updates batch statistics).
    public private(set) var training: Bool = true
    /// How this model was built (a `models.*` constructor or a `model_variants` plugin and its
    /// options), when it was built by name: what a run directory's `model.json` records so that
    /// `sskd predict` can build the same architecture again. Nil for a hand-assembled module.
    public var constructor: ModelConstructor?

    public init() {}

    // MARK: Registration

    /// Registers (or replaces) a trainable parameter; it becomes a leaf that requires grad.
    public func registerParameter(_ name: String, _ tensor: Tensor) {
        tensor.requiresGrad = true
        if let i = localParameters.firstIndex(where: { $0.name == name }) { localParameters[i].tensor = tensor }
        else { localParameters.append((name, tensor)) }
    }

    /// Registers (or replaces) a buffer: saved in the state dict, never trained.
    public func registerBuffer(_ name: String, _ tensor: Tensor, dtype: DType = .f32) {
        if let i = localBuffers.firstIndex(where: { $0.name == name }) { localBuffers[i] = (name, tensor, dtype) }
        else { localBuffers.append((name, tensor, dtype)) }
    }

    /// Registers (or replaces, keeping its position) a child module.
    public func registerModule(_ name: String, _ module: Module) {
        if let i = children.firstIndex(where: { $0.name == name }) { children[i].module = module }
        else { children.append((name, module)) }
    }

    /// The direct child called `name`.
    public func child(_ name: String) -> Module? { children.first { $0.name == name }?.module }

    /// The module at a dotted path (`"features.1.conv"`); `""` is this module.
    public func submodule(_ path: String) -> Module? {
        if path.isEmpty { return self }
        var m: Module = self
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            guard let c = m.child(String(part)) else { return nil }
            m = c
        }
        return m
    }

    /// Replaces the module at a dotted path (`"classifier.1"`), e.g. to swap a classifier head.
    public func setSubmodule(_ path: String, _ module: Module) throws {
        let parts = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let last = parts.last, !path.isEmpty else { throw TensorError("set_submodule", "empty module path") }
        let parentPath = parts.dropLast().joined(separator: ".")
        guard let parent = submodule(parentPath) else { throw TensorError("set_submodule", "no module at '\(parentPath)' (setting '\(path)')") }
        guard parent.child(last) != nil else {
            throw TensorError("set_submodule", "'\(parentPath.isEmpty ? typeName : parentPath)' has no child '\(last)' (children: \(parent.children.map { $0.name }.joined(separator: ", ")))")
        }
        parent.registerModule(last, module)
    }

    // MARK: Tree queries

    /// Every module of the tree with its dotted path, this one first (`""`), depth first.
    public func namedModules(prefix: String = "") -> [(name: String, module: Module)] {
        var out: [(String, Module)] = [(prefix, self)]
        for (n, c) in children { out += c.namedModules(prefix: prefix.isEmpty ? n : prefix + "." + n) }
        return out
    }

    /// All modules of the tree, this one first.
    public func modules() -> [Module] { namedModules().map { $0.module } }

    /// Every parameter with its dotted name (`"features.0.0.weight"`), shared tensors once.
    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        var seen = Set<ObjectIdentifier>()
        var out: [(String, Tensor)] = []
        for (prefix, m) in namedModules() {
            for (n, t) in m.localParameters where seen.insert(ObjectIdentifier(t)).inserted {
                out.append((prefix.isEmpty ? n : prefix + "." + n, t))
            }
        }
        return out
    }

    /// All parameters (for an optimizer).
    public func parameters() -> [Tensor] { namedParameters().map { $0.tensor } }

    /// Every buffer with its dotted name.
    public func namedBuffers() -> [(name: String, tensor: Tensor)] {
        namedModules().flatMap { prefix, m in m.localBuffers.map { (prefix.isEmpty ? $0.name : prefix + "." + $0.name, $0.tensor) } }
    }

    /// Number of parameter elements.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }
    /// Number of parameter elements that require grad.
    public var trainableParameterCount: Int { parameters().filter { $0.requiresGrad }.reduce(0) { $0 + $1.count } }

    // MARK: Modes

    /// Sets training mode on this module and every descendant (`model.train()` / `model.train(false)`).
    public func train(_ mode: Bool = true) {
        training = mode
        for (_, c) in children { c.train(mode) }
    }

    /// Evaluation mode: dropout off, BatchNorm uses its running statistics.
    public func eval() { train(false) }

    /// Sets `requiresGrad` on every parameter (freezing or unfreezing the module).
    public func requiresGrad(_ flag: Bool) { for p in parameters() { p.requiresGrad = flag } }

    /// Clears every parameter's gradient.
    public func zeroGrad() { for p in parameters() { p.grad = nil } }

    // MARK: Forward

    /// The computation; subclasses override it.
    open func forward(_ x: Tensor) throws -> Tensor {
        throw TensorError(typeName, "forward is not implemented")
    }

    /// Whether this module, in eval mode, computes each sample's output from that sample alone
    /// and only in Swift. Built-in layers say yes; a module defined in Lua (or any subclass that
    /// does not say otherwise) says no. A container is per-sample when all its children are.
    open var isPerSampleInEval: Bool { false }

    /// True when this module and all its descendants are in eval mode and per-sample.
    public var splitsBatchInEval: Bool {
        !training && isPerSampleInEval && children.allSatisfy { $0.module.splitsBatchInEval }
    }

    /// Runs `forward` (and reports the output to an active summary).
    ///
    /// An eval forward without a graph of an NCHW batch through a per-sample model
    /// (`splitsBatchInEval`) splits the batch into one slice per thread and runs each slice
    /// through the whole network on its own thread: at batch 32 the per-layer products are too
    /// small for two threads to share well, while whole slices scale. Results equal the unsplit
    /// forward's up to float rounding (a slice's products have other shapes). Part of
    /// `InferenceFusion`; never while a summary or the profiler is recording.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        if let trace = ModuleTrace.observer {
            trace.enter(self)
            let y: Tensor
            do { y = try forward(x) } catch { trace.exit(self, input: x, output: nil); throw error }
            trace.exit(self, input: x, output: y)
            return y
        }
        if let slices = InferenceFusion.batchSlices(self, x) { return try forwardSplittingBatch(x, slices: slices) }
        let y = try forward(x)
        if let rec = SummaryRecorder.active { rec.record(self, input: x, output: y) }
        return y
    }

    /// `forward` over `slices` contiguous slices of the batch in parallel, concatenated.
    private func forwardSplittingBatch(_ x: Tensor, slices: Int) throws -> Tensor {
        let n = x.shape[0]
        let bounds = (0...slices).map { $0 * n / slices }
        let parts = try (0..<slices).map { try x.narrow(0, start: bounds[$0], length: bounds[$0 + 1] - bounds[$0]) }
        var results = [Result<Tensor, Error>?](repeating: nil, count: slices)
        results.withUnsafeMutableBufferPointer { out in
            parallelTasks(slices) { i in out[i] = Result { try self.forward(parts[i]) } }
        }
        guard let ys = try? results.map({ try $0!.get() }) else {
            // Report the error with the caller's input (a slice's shape would mislead): rerun whole.
            return try forward(x)
        }
        for (i, y) in ys.enumerated() where y.dim == 0 || y.shape[0] != parts[i].shape[0] {
            throw TensorError(typeName, "forward of a batch slice of \(parts[i].shape[0]) gave shape \(y.shape); a per-sample module must keep the batch dim")
        }
        return try Tensor.cat(ys, dim: 0)
    }

    // MARK: Printing

    /// The class name shown in the printed tree (`Conv2d`, `MBConv`, ...).
    open var typeName: String { String(describing: type(of: self)) }

    /// The settings shown inside the parentheses, like PyTorch's `extra_repr`.
    open var extraRepr: String { "" }

    /// The layer tree, formatted like PyTorch's `repr(module)`.
    public var description: String {
        let extra = extraRepr.isEmpty ? [] : extraRepr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let childLines = children.map { name, m in
            "(\(name)): " + m.description.replacingNewlines(with: "\n  ")
        }
        var s = typeName + "("
        let lines = extra + childLines
        if !lines.isEmpty {
            if extra.count == 1 && childLines.isEmpty { s += extra[0] } else { s += "\n  " + lines.joined(separator: "\n  ") + "\n" }
        }
        return s + ")"
    }
}

extension String {
    /// Indents continuation lines (PyTorch's `_addindent`).
    func replacingNewlines(with s: String) -> String {
        split(separator: "\n", omittingEmptySubsequences: false).joined(separator: s)
    }
}

/// Formats a Double the way Python's `repr(float)` does (shortest round-trip: `0.1`, `1e-05`, `0.0`);
/// Swift's `description` uses the same algorithm and spelling.
func pyFloat(_ v: Double) -> String {
    if v.isNaN { return "nan" }
    if v.isInfinite { return v > 0 ? "inf" : "-inf" }
    return v.description
}

/// Python's tuple repr for ints: `(3, 3)`, `(1,)`.
func pyTuple(_ v: [Int]) -> String { v.count == 1 ? "(\(v[0]),)" : "(" + v.map(String.init).joined(separator: ", ") + ")" }

func pyBool(_ b: Bool) -> String { b ? "True" : "False" }

/// Sees every module call as it starts and ends: how exporters (ONNX) learn which layer made
/// which tensor. Off (nil) except inside a trace, which runs unfused and unsplit (`callAsFunction`
/// skips the batch split while it is set).
public protocol ModuleTraceObserver: AnyObject {
    func enter(_ module: Module)
    /// `output` is nil when the forward threw.
    func exit(_ module: Module, input: Tensor, output: Tensor?)
}

public enum ModuleTrace {
    nonisolated(unsafe) public static var observer: ModuleTraceObserver?
}

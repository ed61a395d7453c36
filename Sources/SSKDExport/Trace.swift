// Tracing a forward: which layer or op made which tensor.
//
// The exporter runs the model once, in eval mode, with grad recording and the fused inference
// paths off, while two observers listen: `ModuleTrace` (every module call: the module, its input
// and output) and `OpTrace` (every tensor op: its name, inputs, output and the settings the shapes
// do not tell). A tensor made by a layer the exporter knows (Conv2d, BatchNorm2d, ...) is exported
// as that layer; any other tensor as the op that made it. So containers and modules written in Lua
// need no exporter of their own: their forward is traced through to the layers and ops it uses.

import Foundation
import SSKDNN
import SSKDTensor

/// One traced forward. Holds every traced tensor, so their identities stay unique while the
/// graph is built.
final class ForwardTrace: ModuleTraceObserver {
    /// A call of a layer the exporter maps as a whole.
    struct LayerCall {
        let module: Module
        let input: Tensor
        let output: Tensor
    }

    /// A tensor op, with the innermost module running when it ran (for error messages).
    struct OpCall {
        let name: String
        let inputs: [Tensor]
        let output: Tensor
        let attributes: OpTrace.Attributes
        let module: Module?
    }

    /// Layers exported whole; their internal ops are never visited.
    static func isMappedLayer(_ m: Module) -> Bool {
        switch m {
        case is Conv2d, is BatchNorm2d, is Linear, is ReLU, is ReLU6, is SiLU, is Sigmoid, is Hardswish, is Hardsigmoid,
             is MaxPool2d, is AvgPool2d, is AdaptiveAvgPool2d, is Flatten:
            return true
        default:
            return false
        }
    }

    private(set) var layerByOutput: [ObjectIdentifier: LayerCall] = [:]
    private(set) var opByOutput: [ObjectIdentifier: OpCall] = [:]
    private var stack: [Module] = []
    /// The thread running the traced forward. The observers are process-wide, so ops on other
    /// threads (a data loader's prefetching, say) reach them too; they are not part of the trace.
    private let thread = pthread_self()
    private var onTracingThread: Bool { pthread_equal(pthread_self(), thread) != 0 }

    func enter(_ module: Module) { if onTracingThread { stack.append(module) } }

    func exit(_ module: Module, input: Tensor, output: Tensor?) {
        guard onTracingThread else { return }
        stack.removeLast()
        // A layer that hands its input back (Dropout, StochasticDepth and Identity in eval) is no node.
        guard let output, output !== input, Self.isMappedLayer(module) else { return }
        // The innermost mapped layer wins (exits run inner first).
        let key = ObjectIdentifier(output)
        if layerByOutput[key] == nil { layerByOutput[key] = LayerCall(module: module, input: input, output: output) }
    }

    func op(_ name: String, _ inputs: [Tensor], _ output: Tensor, _ attributes: OpTrace.Attributes) {
        guard onTracingThread, !inputs.contains(where: { $0 === output }) else { return }
        // The outermost op wins: ops built on others record last (sum's result is a reshape of its
        // kernel's output, recorded as "reshape" first, then as "sum").
        opByOutput[ObjectIdentifier(output)] = OpCall(name: name, inputs: inputs, output: output, attributes: attributes, module: stack.last)
    }

    /// Runs `model(input)` in eval mode under both observers and returns the output. The model's
    /// train/eval flags, grad mode and the fusion switch are restored afterwards, also on error.
    static func run(_ model: Module, _ input: Tensor, into trace: ForwardTrace) throws -> Tensor {
        let modes = model.namedModules().map { ($0.module, $0.module.training) }
        let fusion = InferenceFusion.enabled
        defer {
            // Pre-order: a parent's train(_:) sets its subtree, then each descendant resets its own.
            for (m, flag) in modes { m.train(flag) }
            InferenceFusion.enabled = fusion
            ModuleTrace.observer = nil
            OpTrace.observer = nil
        }
        guard ModuleTrace.observer == nil, OpTrace.observer == nil else {
            throw TensorError("export_onnx", "another trace is running (export is not reentrant)")
        }
        model.eval()
        InferenceFusion.enabled = false
        ModuleTrace.observer = trace
        OpTrace.observer = { [unowned trace] name, inputs, output, attributes in trace.op(name, inputs, output, attributes) }
        return try withNoGrad { try model(input) }
    }
}

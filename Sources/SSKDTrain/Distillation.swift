import SSKDTensor

/// The paper's distillation terms (PAPER.md, "Distillation").
///
///   student, teacher  [N, C] logits
///   labels            [N] class indices as floats
public enum Distillation {
    /// KL(softmax(teacher/T) || log_softmax(student/T)) with batch-mean reduction, times T^2.
    public static func kdLoss(student: Tensor, teacher: Tensor, temperature t: Double) throws -> Tensor {
        guard student.shape == teacher.shape else {
            throw TrainError("kd_loss", "student logits \(student.shape) and teacher logits \(teacher.shape) differ")
        }
        guard t > 0, t.isFinite else { throw TrainError("kd_loss", "temperature must be a positive number, got \(t)") }
        let inv = Float(1 / t)
        let logP = try student.mul(inv).logSoftmax(1)
        let q = try teacher.detach().mul(inv).softmax(1)
        return try logP.klDiv(q, reduction: .batchmean).mul(Float(t * t))
    }

    /// `alpha * KD + (1 - alpha) * CE(student, labels)`; the KD term is skipped when alpha is 0
    /// and the CE term when alpha is 1 or there are no labels (unlabeled batches).
    public static func blend(student: Tensor, teacher: Tensor?, labels: Tensor?, alpha: Double, temperature: Double) throws -> Tensor {
        guard alpha >= 0 && alpha <= 1 else { throw TrainError("loss", "alpha must be in [0, 1], got \(alpha)") }
        var terms: [Tensor] = []
        if let labels, alpha < 1 { terms.append(try student.crossEntropy(labels).mul(Float(1 - alpha))) }
        if alpha > 0 || labels == nil {
            guard let teacher else { throw TrainError("loss", "alpha \(alpha) > 0 needs teacher logits") }
            terms.append(try kdLoss(student: student, teacher: teacher, temperature: temperature).mul(Float(labels == nil ? 1 : alpha)))
        }
        guard var total = terms.first else { throw TrainError("loss", "nothing to train on: no labels and no teacher") }
        for t in terms.dropFirst() { total = try total + t }
        return total
    }

    /// The paper's gradual schedule by zero-based epoch: CE alone for e < 5, then
    /// min(0.1 + 0.05 * (e - 5), 0.9).
    public static func paperAlpha(epoch e: Int) -> Double {
        e < 5 ? 0 : min(0.1 + 0.05 * Double(e - 5), 0.9)
    }
}

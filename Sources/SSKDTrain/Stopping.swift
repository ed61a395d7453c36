/// Native early-stopping rules over the metric history (the Lua plugins in plugins/stoppers
/// offer the same and more to recipes).
public enum Stopping {
    /// The paper's rule: stop once `patience` epochs in a row have not improved on the best value
    /// of `metric` (by more than `minDelta`). `higherIsBetter` for accuracies, false for losses.
    public static func patience(_ patience: Int, metric: String = "eval_accuracy", minDelta: Double = 0,
                                higherIsBetter: Bool = true) -> ([MetricRow]) throws -> Bool {
        return { history in
            var best: Double? = nil
            var bad = 0
            for row in history {
                guard let v = row[metric]?.double else {
                    throw TrainError("patience", "metric '\(metric)' is missing from the history (have: \(row.fields.map { $0.0 }.joined(separator: ", ")))")
                }
                if let b = best, !(higherIsBetter ? v > b + minDelta : v < b - minDelta) {
                    bad += 1
                } else {
                    best = v
                    bad = 0
                }
            }
            return bad >= patience
        }
    }
}

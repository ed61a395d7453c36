import SSKDData
import SSKDDist
import SSKDNN
import SSKDTensor

/// Accuracy, mean loss, per-class accuracy and the confusion matrix of a model on a dataset.
public struct Evaluation {
    public var loss: Double
    public var accuracy: Double
    public var count: Int
    /// confusion[true][predicted]
    public var confusion: [[Int]]
    public var classNames: [String]

    public var perClassAccuracy: [Double?] {
        confusion.enumerated().map { c, row in
            let n = row.reduce(0, +)
            return n == 0 ? nil : Double(row[c]) / Double(n)
        }
    }

    /// The confusion matrix and per-class accuracy as a Markdown table.
    public var table: String {
        let k = confusion.count
        var s = "| true \\ predicted | " + (0..<k).map { String($0) }.joined(separator: " | ") + " | accuracy |\n"
        s += "|---|" + String(repeating: "---:|", count: k + 1) + "\n"
        for c in 0..<k {
            let name = c < classNames.count ? classNames[c] : String(c)
            let acc = perClassAccuracy[c].map { String(format: "%.1f %%", 100 * $0) } ?? "-"
            s += "| \(c) \(name) | " + confusion[c].map(String.init).joined(separator: " | ") + " | \(acc) |\n"
        }
        return s
    }
}

/// Evaluates `model` (in eval mode, without a graph) on every image of `dataset`.
///
/// With a communicator of several ranks, each rank evaluates its contiguous share of the images
/// and the confusion matrix and loss sum are added up over the ranks: every rank returns the
/// whole split's result (which assumes the ranks hold the same weights and batch-norm statistics).
public func evaluate(_ model: Module, on dataset: Dataset, transform: Transform?, batchSize: Int = 256,
                     communicator: Communicator = .local) throws -> Evaluation {
    guard dataset.isLabeled else { throw TrainError("evaluate", "\(dataset.name) has no labels") }
    let wasTraining = model.training
    model.eval()
    defer { model.train(wasTraining) }
    let (r, size) = (communicator.rank, communicator.size)
    let part = size == 1 ? dataset : try dataset.subset(Array((dataset.count * r / size)..<(dataset.count * (r + 1) / size)))
    let k = dataset.classCount
    var confusion = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
    var lossSum = 0.0, n = 0
    // A rank whose share is empty (fewer images than ranks) only joins the sums.
    if part.count > 0 {
        let loader = try DataLoader(part, batchSize: batchSize, shuffle: false, transform: transform)
        try withNoGrad {
            try loader.forEach(epoch: 0) { batch in
                let logits = try model(batch.images)
                guard logits.dim == 2, logits.shape[1] == k else {
                    throw TrainError("evaluate", "model output \(logits.shape) does not match \(k) classes of \(dataset.name)")
                }
                guard let labels = batch.labels, let y = try batch.labelTensor() else { return true }
                let loss = try logits.crossEntropy(y, reduction: .sum).item()
                lossSum += Double(loss)
                let pred = try logits.argmax(1)
                for (i, label) in labels.enumerated() { confusion[label][Int(pred.data[i])] += 1 }
                n += labels.count
                return true
            }
        }
    }
    if size > 1 {
        var sums = confusion.flatMap { $0.map(Double.init) } + [lossSum, Double(n)]
        try communicator.allReduce(&sums, op: .sum)
        for t in 0..<k { for p in 0..<k { confusion[t][p] = Int(sums[t * k + p]) } }
        lossSum = sums[k * k]
        n = Int(sums[k * k + 1])
    }
    let correct = (0..<k).reduce(0) { $0 + confusion[$1][$1] }
    return Evaluation(loss: n > 0 ? lossSum / Double(n) : .nan, accuracy: n > 0 ? Double(correct) / Double(n) : .nan,
                      count: n, confusion: confusion, classNames: dataset.classNames)
}

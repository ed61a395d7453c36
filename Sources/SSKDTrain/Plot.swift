import CImageCodecs
import Foundation

/// A line chart rendered to PNG without any plotting dependency: one or more panels side by side
/// (the trainer draws accuracy and loss per epoch), each with named series, axes, tick labels and a
/// legend in a built-in 5x7 pixel font. Written through libpng's simplified API (no longjmp).
public struct LinePlot {
    public struct Series {
        public var name: String
        public var values: [Double?]   // one per epoch; nil = missing
        public var color: (UInt8, UInt8, UInt8)
        public init(name: String, values: [Double?], color: (UInt8, UInt8, UInt8)) {
            self.name = name; self.values = values; self.color = color
        }
    }
    public struct Panel {
        public var title: String
        public var xLabel: String
        public var series: [Series]
        public init(title: String, xLabel: String = "epoch", series: [Series]) {
            self.title = title; self.xLabel = xLabel; self.series = series
        }
    }

    public var panels: [Panel]
    public var panelWidth = 480
    public var height = 360

    public init(panels: [Panel]) { self.panels = panels }

    /// Distinct colours for up to 6 series (then repeats).
    public static let palette: [(UInt8, UInt8, UInt8)] = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (23, 190, 207)]

    /// Renders to an RGB buffer (row-major, 3 bytes per pixel).
    public func render() -> (width: Int, height: Int, rgb: [UInt8]) {
        var canvas = Canvas(width: panelWidth * max(panels.count, 1), height: height)
        for (i, p) in panels.enumerated() { drawPanel(p, into: &canvas, x0: i * panelWidth) }
        return (canvas.width, canvas.height, canvas.pixels)
    }

    /// Writes the chart as a PNG file (atomically: a temporary file renamed into place).
    public func writePNG(to path: String) throws {
        let (w, h, rgb) = render()
        let tmp = path + ".tmp"
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(w); image.height = UInt32(h)
        image.format = UInt32(PNG_FORMAT_RGB)
        let ok = rgb.withUnsafeBufferPointer { buf in
            png_image_write_to_file(&image, tmp, 0, buf.baseAddress, Int32(w * 3), nil)
        }
        guard ok != 0 else {
            let msg = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            try? FileManager.default.removeItem(atPath: tmp)
            throw TrainError("plot", "cannot write PNG \(path): \(msg)")
        }
        guard rename(tmp, path) == 0 else { throw TrainError("plot", "cannot move \(tmp) to \(path): \(String(cString: strerror(errno)))") }
    }

    private func drawPanel(_ p: Panel, into c: inout Canvas, x0: Int) {
        let left = x0 + 58, right = x0 + panelWidth - 16, top = 28, bottom = height - 44
        c.text(p.title, x: x0 + panelWidth / 2 - p.title.count * 3, y: 8, color: (0, 0, 0))
        // Ranges.
        let all = p.series.flatMap { $0.values.compactMap { $0 } }.filter { $0.isFinite }
        let n = p.series.map { $0.values.count }.max() ?? 0
        var lo = all.min() ?? 0, hi = all.max() ?? 1
        if hi - lo < 1e-9 { lo -= 0.5; hi += 0.5 }
        let pad = (hi - lo) * 0.05; lo -= pad; hi += pad
        let xMax = Double(max(n - 1, 1))
        // Values spanning more than a Double (1e308 and -1e308) would make the scale NaN: such a
        // point lands on the panel's edge rather than reaching Int()'s trap.
        func pixel(_ d: Double) -> Int { d.isFinite ? Int(Swift.max(-1e6, Swift.min(1e6, d))) : 0 }
        func px(_ i: Double) -> Int { left + pixel((i / xMax) * Double(right - left)) }
        func py(_ v: Double) -> Int { bottom - pixel((v - lo) / (hi - lo) * Double(bottom - top)) }
        // Grid and ticks.
        for k in 0...4 {
            let v = lo + (hi - lo) * Double(k) / 4
            let y = py(v)
            c.line(left, y, right, y, color: (225, 225, 225))
            let label = LinePlot.tick(v, span: hi - lo)
            c.text(label, x: left - 6 - label.count * 6, y: y - 3, color: (60, 60, 60))
        }
        let xTicks = min(n, 6)
        if xTicks > 1 {
            for k in 0..<xTicks {
                let e = Int((Double(k) / Double(xTicks - 1) * xMax).rounded())
                let x = px(Double(e))
                c.line(x, bottom, x, bottom + 4, color: (0, 0, 0))
                c.text(String(e), x: x - String(e).count * 3, y: bottom + 8, color: (60, 60, 60))
            }
        }
        c.line(left, top, left, bottom, color: (0, 0, 0))
        c.line(left, bottom, right, bottom, color: (0, 0, 0))
        c.text(p.xLabel, x: (left + right) / 2 - p.xLabel.count * 3, y: height - 16, color: (0, 0, 0))
        // Series.
        for s in p.series {
            var prev: (Int, Int)? = nil
            for (i, v) in s.values.enumerated() {
                guard let v, v.isFinite else { prev = nil; continue }
                let pt = (px(Double(i)), py(v))
                if let q = prev { c.line(q.0, q.1, pt.0, pt.1, color: s.color, thick: true) }
                c.dot(pt.0, pt.1, color: s.color)
                prev = pt
            }
        }
        // Legend.
        for (k, s) in p.series.enumerated() {
            let y = top + 6 + k * 12
            c.line(right - 120, y + 3, right - 104, y + 3, color: s.color, thick: true)
            c.text(s.name, x: right - 98, y: y, color: (0, 0, 0))
        }
    }

    static func tick(_ v: Double, span: Double) -> String {
        let decimals = span >= 50 ? 0 : (span >= 5 ? 1 : (span >= 0.5 ? 2 : 3))
        return String(format: "%.\(decimals)f", v)
    }
}

/// An RGB raster with Bresenham lines and a 5x7 bitmap font.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        self.width = width; self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, color: (UInt8, UInt8, UInt8), thick: Bool = false) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            set(x, y, color)
            if thick { set(x + 1, y, color); set(x, y + 1, color) }
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    mutating func dot(_ x: Int, _ y: Int, color: (UInt8, UInt8, UInt8)) {
        for dy in -2...2 { for dx in -2...2 where dx * dx + dy * dy <= 5 { set(x + dx, y + dy, color) } }
    }

    mutating func text(_ s: String, x: Int, y: Int, color: (UInt8, UInt8, UInt8)) {
        var cx = x
        for ch in s.lowercased() {
            if let rows = Canvas.font[ch] {
                for (r, bits) in rows.enumerated() {
                    for (k, b) in bits.enumerated() where b == "#" { set(cx + k, y + r, color) }
                }
            }
            cx += 6
        }
    }

    /// 5x7 glyphs (lower case renders as capitals).
    static let font: [Character: [String]] = {
        let g: [(Character, String)] = [
            ("0", ".###. #...# #..## #.#.# ##..# #...# .###."), ("1", "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###."),
            ("2", ".###. #...# ....# ...#. ..#.. .#... #####"), ("3", "####. ....# ....# .###. ....# ....# ####."),
            ("4", "...#. ..##. .#.#. #..#. ##### ...#. ...#."), ("5", "##### #.... ####. ....# ....# #...# .###."),
            ("6", ".###. #.... #.... ####. #...# #...# .###."), ("7", "##### ....# ...#. ..#.. .#... .#... .#..."),
            ("8", ".###. #...# #...# .###. #...# #...# .###."), ("9", ".###. #...# #...# .#### ....# ....# .###."),
            (".", "..... ..... ..... ..... ..... .##.. .##.."), ("-", "..... ..... ..... ##### ..... ..... ....."),
            ("%", "##..# ##..# ...#. ..#.. .#... #..## #..##"), (":", "..... .##.. .##.. ..... .##.. .##.. ....."),
            ("(", "...#. ..#.. .#... .#... .#... ..#.. ...#."), (")", ".#... ..#.. ...#. ...#. ...#. ..#.. .#..."),
            ("_", "..... ..... ..... ..... ..... ..... #####"), ("/", "....# ...#. ...#. ..#.. .#... .#... #...."),
            ("=", "..... ..... ##### ..... ##### ..... ....."), ("+", "..... ..#.. ..#.. ##### ..#.. ..#.. ....."),
            ("a", ".###. #...# #...# ##### #...# #...# #...#"), ("b", "####. #...# #...# ####. #...# #...# ####."),
            ("c", ".###. #...# #.... #.... #.... #...# .###."), ("d", "####. #...# #...# #...# #...# #...# ####."),
            ("e", "##### #.... #.... ####. #.... #.... #####"), ("f", "##### #.... #.... ####. #.... #.... #...."),
            ("g", ".###. #...# #.... #.### #...# #...# .####"), ("h", "#...# #...# #...# ##### #...# #...# #...#"),
            ("i", ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###."), ("j", "..### ...#. ...#. ...#. ...#. #..#. .##.."),
            ("k", "#...# #..#. #.#.. ##... #.#.. #..#. #...#"), ("l", "#.... #.... #.... #.... #.... #.... #####"),
            ("m", "#...# ##.## #.#.# #.#.# #...# #...# #...#"), ("n", "#...# #...# ##..# #.#.# #..## #...# #...#"),
            ("o", ".###. #...# #...# #...# #...# #...# .###."), ("p", "####. #...# #...# ####. #.... #.... #...."),
            ("q", ".###. #...# #...# #...# #.#.# #..#. .##.#"), ("r", "####. #...# #...# ####. #.#.. #..#. #...#"),
            ("s", ".#### #.... #.... .###. ....# ....# ####."), ("t", "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."),
            ("u", "#...# #...# #...# #...# #...# #...# .###."), ("v", "#...# #...# #...# #...# #...# .#.#. ..#.."),
            ("w", "#...# #...# #...# #.#.# #.#.# #.#.# .#.#."), ("x", "#...# #...# .#.#. ..#.. .#.#. #...# #...#"),
            ("y", "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.."), ("z", "##### ....# ...#. ..#.. .#... #.... #####"),
            (" ", "..... ..... ..... ..... ..... ..... ....."),
        ]
        var m: [Character: [String]] = [:]
        for (c, rows) in g { m[c] = rows.split(separator: " ").map(String.init) }
        return m
    }()
}

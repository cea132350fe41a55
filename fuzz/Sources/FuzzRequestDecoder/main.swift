import CLibFuzzer

#if canImport(Glibc)
    import Glibc
#endif

/// libFuzzer's entry point: the request decoder and parser on one input.
///
/// The first byte picks the limits (``ProtocolFuzzer/Limits/all``) and the largest read; the rest is the input,
/// decoded at once and in reads of pseudo-random sizes derived from it. A broken property aborts, so that
/// libFuzzer saves the input; `FuzzRequestDecoder <file>` runs a saved input again.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestDecoder(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    let first = bytes[0]
    let limits = ProtocolFuzzer.Limits.all[Int(first) % ProtocolFuzzer.Limits.all.count]
    let input = Array(bytes.dropFirst())
    var generator = SeededGenerator(seed: UInt64(first) << 32 | UInt64(input.count))
    let largestRead = 1 + Int(first >> 2)
    var chunking: [Int] = []
    var left = input.count
    while left > 0 {
        let size = min(left, Int.random(in: 1...largestRead, using: &generator))
        chunking.append(size)
        left -= size
    }
    let failures = ProtocolFuzzer.check(input, limits: limits, chunking: chunking.isEmpty ? [1] : chunking)
    if !failures.isEmpty {
        // Straight to standard error, unbuffered, so that the message is out before abort().
        let message = Array(
            "FuzzRequestDecoder (\(limits)): \(failures.joined(separator: "; "))\ninput: \(ProtocolFuzzer.describe(input))\n"
                .utf8)
        _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        abort()
    }
    return 0
}

/// The program's entry. On Linux, SwiftPM links an executable's `main` to `<module>_main`, so libFuzzer's own
/// `main` is not used: this one runs libFuzzer's driver instead.
@_cdecl("FuzzRequestDecoder_main")
public func fuzzRequestDecoderMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzRequestDecoder(data, size) }
}

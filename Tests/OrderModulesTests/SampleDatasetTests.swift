import Foundation
import LoglineCore
import LoglineModuleAPI
import LoglineModuleTesting
import Testing

/// Replays data/orders-sample.txt through the modules and checks the outcomes its header promises.
@Suite struct SampleDatasetTests {
    static let sampleURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("data/orders-sample.txt")

    @Test func theSampleDatasetEndsAsDocumented() async throws {
        let text = try String(contentsOf: Self.sampleURL, encoding: .utf8)
        var saga = try SagaSimulator(modules: allOrderModules())
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
            let words = line.split(separator: " ", maxSplits: 4).map(String.init)
            switch words.first {
            case "APPEND":
                try #require(words.count == 5, "\(line)")
                let stream = try StreamName(aggregateType: words[1], aggregateID: words[2])
                saga.append(words[3], to: stream, data: try JSONValue(parsing: words[4]))
            case "SUBMIT":
                let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
                try await saga.submit(parts[1], try JSONValue(parsing: parts[2]))
            default:
                Issue.record("unexpected line \(line)")
            }
            // As if the modules keep up with the one loading the file.
            try saga.run()
        }
        #expect(saga.failures.isEmpty)
        let status = saga.documents("orders").mapValues { $0["status"]?.stringValue ?? "?" }
        let payment = saga.documents("orders").mapValues { $0["payment"]?.stringValue ?? "?" }
        for id in ["o-1001", "o-1002", "o-1005", "o-1006"] {
            #expect(status[id] == "Approved", "\(id)")
            #expect(payment[id] == "debited", "\(id)")
        }
        #expect(status["o-1003"] == "Rejected")
        #expect(payment["o-1003"] == "failed")
        for id in ["o-1004", "o-1007"] {
            #expect(status[id] == "Rejected", "\(id)")
            #expect(payment[id] == "refunded", "\(id)")
        }
        #expect(saga.document("wallets", key: "c1")?["balance"] == number("1218.50"))
        #expect(saga.document("orders", key: "o-1001")?["amount"] == number("31.50"))
    }
}

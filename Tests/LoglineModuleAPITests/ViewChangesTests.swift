import LoglineCore
import LoglineModuleAPI
import Testing

/// All the tests of this file, so that `--filter ViewChangesTests` selects them.
@Suite("ViewChanges")
struct ViewChangesTests {
    /// Two views; the store holds `stored/s1` in `a`.
    static func changes() -> ViewChanges {
        ViewChanges(views: [ViewDefinition(name: "a"), ViewDefinition(name: "b")]) { view, key in
            view == "a" && key == "s1" ? ["stored": true] : nil
        }
    }

    @Test("reads see the store and the changes made so far; changes are by view, without views left untouched")
    func readsAndChanges() throws {
        var views = Self.changes()
        #expect(try views.document("a", key: "s1") == ["stored": true])
        #expect(try views.document("b", key: "s1") == nil)
        #expect(views.changes.isEmpty)
        try views.put("a", key: "k1", document: 1)
        try views.delete("a", key: "s1")
        #expect(try views.document("a", key: "k1") == 1)
        #expect(try views.document("a", key: "s1") == nil)
        var expected: [String: JSONValue?] = ["k1": 1]
        expected.updateValue(nil, forKey: "s1")  // a deletion
        #expect(views.changes == ["a": expected])
        #expect(throws: ViewError.unknownView("c")) { try views.document("c", key: "k1") }
        #expect(throws: ViewError.unknownView("c")) { try views.put("c", key: "k1", document: 1) }
        #expect(throws: ViewError.invalidKey("")) { try views.put("b", key: "", document: 1) }
        views.reset()
        #expect(views.changes.isEmpty)
        #expect(try views.document("a", key: "s1") == ["stored": true])
    }

    @Test("rolling back undoes every write since the savepoint, in both views, and only those")
    func rollBack() throws {
        var views = Self.changes()
        try views.put("a", key: "k1", document: 1)
        views.beginSavepoint()
        try views.put("a", key: "k1", document: 2)
        views.releaseSavepoint()
        let kept = views.changes

        views.beginSavepoint()
        try views.put("a", key: "k1", document: 3)
        try views.put("a", key: "k1", document: 4)
        try views.put("b", key: "k2", document: 5)
        try views.delete("a", key: "s1")
        views.rollBack()
        #expect(views.changes == kept)
        #expect(views.changes == ["a": ["k1": 2]])
        #expect(try views.document("a", key: "s1") == ["stored": true])
        #expect(try views.document("b", key: "k2") == nil)

        // Outside a savepoint, nothing is recorded and rolling back does nothing.
        try views.put("b", key: "k3", document: 6)
        views.rollBack()
        #expect(views.changes == ["a": ["k1": 2], "b": ["k3": 6]])
        // A savepoint after a rolled-back one records afresh.
        views.beginSavepoint()
        try views.delete("b", key: "k3")
        views.rollBack()
        #expect(views.changes == ["a": ["k1": 2], "b": ["k3": 6]])
    }
}

import LoglineCore

/// A module's views during one batch: reads see the stored documents and every change made so far; writes are
/// collected and committed by the host together with the module's checkpoint.
///
/// The host supplies how stored documents are read; a test supplies an in-memory store.
public struct ViewChanges: Sendable {
    /// Reads a stored document: `(view, key) -> document`.
    public typealias Reader = @Sendable (String, String) throws -> JSONValue?

    private let reader: Reader
    /// The module's views, each once. A module has a handful: finding one by comparing names is cheaper than
    /// hashing its name for every read and write.
    private let viewNames: [String]
    /// The changed documents of each view of `viewNames`, by key.
    private var byView: [[String: JSONValue?]]

    /// The changed documents by view and key: a document, or `nil` for a deletion. Views without changes are
    /// left out.
    public var changes: [String: [String: JSONValue?]] {
        var result: [String: [String: JSONValue?]] = [:]
        for (index, name) in viewNames.enumerated() where !byView[index].isEmpty { result[name] = byView[index] }
        return result
    }

    /// Creates the views of a module.
    /// - Parameters:
    ///   - views: The views the module owns; others cannot be touched.
    ///   - reader: How stored documents are read.
    public init(views: [ViewDefinition], reader: @escaping Reader) {
        var names: [String] = []
        for view in views where !names.contains(view.name) { names.append(view.name) }
        self.viewNames = names
        self.byView = Array(repeating: [:], count: names.count)
        self.reader = reader
    }

    /// The position of `view` in `viewNames`.
    @inline(__always)
    private func index(of view: String) throws(ViewError) -> Int {
        guard let index = viewNames.firstIndex(of: view) else { throw ViewError.unknownView(view) }
        return index
    }

    /// The current document of `key` in `view`.
    /// - Parameters:
    ///   - view: The view.
    ///   - key: The document's key.
    /// - Returns: The document, or `nil` when there is none.
    /// - Throws: ``ViewError/unknownView(_:)``, or a storage error.
    public func document(_ view: String, key: String) throws -> JSONValue? {
        if let changed = byView[try index(of: view)][key] { return changed }
        return try reader(view, key)
    }

    /// Stores `document` under `key` in `view`, replacing what was there.
    /// - Parameters:
    ///   - view: The view.
    ///   - key: The document's key (1 to 200 bytes of UTF-8, without 0 bytes).
    ///   - document: The document, usually a JSON object.
    /// - Throws: ``ViewError``.
    public mutating func put(_ view: String, key: String, document: JSONValue) throws {
        let index = try index(of: view)
        guard !key.isEmpty, key.utf8.count <= 200, !key.utf8.contains(0) else { throw ViewError.invalidKey(key) }
        record(index, key, previous: byView[index].updateValue(JSONValue?.some(document), forKey: key))
    }

    /// Removes the document of `key` from `view`.
    /// - Parameters:
    ///   - view: The view.
    ///   - key: The document's key.
    /// - Throws: ``ViewError/unknownView(_:)``.
    public mutating func delete(_ view: String, key: String) throws {
        let index = try index(of: view)
        record(index, key, previous: byView[index].updateValue(JSONValue?.none, forKey: key))
    }

    /// Forgets all changes (the host starts each batch afresh).
    public mutating func reset() {
        byView = Array(repeating: [:], count: viewNames.count)
        undo = []
        recording = false
    }

    // MARK: - Savepoints

    /// What the changes held for a key before a write: `nil` when the key had no change.
    private struct UndoEntry {
        var view: Int
        var key: String
        var previous: JSONValue??
    }

    /// What the changes held before each write since ``beginSavepoint()``. A struct, not a tuple: arrays of tuples
    /// go through slow generic paths at run time. Emptied, not dropped, between savepoints, so that a host
    /// running a savepoint per event does not allocate one per event.
    private var undo: [UndoEntry] = []
    /// Whether a savepoint is open.
    private var recording = false

    /// Starts recording writes, so that ``rollBack()`` can undo them: a host calls this before it hands the
    /// views to a module for one event, instead of copying every change made so far in the batch.
    public mutating func beginSavepoint() {
        undo.removeAll(keepingCapacity: true)
        recording = true
    }

    /// Keeps the writes made since ``beginSavepoint()`` and stops recording.
    public mutating func releaseSavepoint() {
        undo.removeAll(keepingCapacity: true)
        recording = false
    }

    /// Undoes the writes made since ``beginSavepoint()`` (a module threw), and stops recording.
    public mutating func rollBack() {
        guard recording else { return }
        for entry in undo.reversed() {
            byView[entry.view][entry.key] = entry.previous
        }
        undo.removeAll(keepingCapacity: true)
        recording = false
    }

    /// Records what a write replaced, while a savepoint is open: the key is looked up once, by the write itself.
    private mutating func record(_ view: Int, _ key: String, previous: JSONValue??) {
        guard recording else { return }
        undo.append(UndoEntry(view: view, key: key, previous: previous))
    }
}

/// A misuse of ``ViewChanges``.
public enum ViewError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The view is not one of the module's.
    case unknownView(String)
    /// The key is empty, too long, or contains a 0 byte.
    case invalidKey(String)

    /// A message.
    public var description: String {
        switch self {
        case .unknownView(let view): return "'\(view)' is not one of this module's views"
        case .invalidKey(let key): return "invalid document key '\(key.prefix(64))'"
        }
    }
}

import SharedView

/// The shared data view as the place where the orchestrator finds the facts of `sharedFact:`
/// materials: each lookup goes through the view's one read path, which records the read (reader,
/// reason, the facts' event ids) in the view's usage log, so `onewindow data-usage ID` lists it.
public struct SharedViewFacts: SharedFactLookup {
    public let view: SharedViewStore

    public init(view: SharedViewStore) { self.view = view }

    public func latestFact(kind: String, subject: String, reader: String, reason: String) async throws
        -> SharedFactRecord?
    {
        guard let fact = try await view.latestFact(kind: kind, subject: subject, reader: reader, reason: reason)
        else { return nil }
        return SharedFactRecord(
            kind: fact.kind, subject: fact.subject, eventId: fact.eventId, topic: fact.topic, time: fact.time,
            data: fact.body)
    }
}

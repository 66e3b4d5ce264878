/// The demo federation, embedded so that `liaison demo` runs anywhere. It is the text of
/// `topology/demo.yaml`; a test keeps the two identical.
enum DemoTopology {
    static let yaml = """
        # The demo federation: three partners with asymmetric filters. alpha and charlie have
        # no direct link; what both may see travels through bravo.
        federation: demo
        classifications: [UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET, TOP SECRET]

        partners:
          alpha:
            endpoints: [127.0.0.1:7401]
            api: 127.0.0.1:7501
            groups: [EAST]
          bravo:
            endpoints: [127.0.0.1:7402]
            api: 127.0.0.1:7502
            groups: [EAST, WEST]
          charlie:
            endpoints: [127.0.0.1:7403]
            api: 127.0.0.1:7503
            groups: [WEST]

        links:
          - from: alpha
            to: bravo
            filter:
              collections: [reports, indicators]
              max-classification: SECRET
              redact: [source]
          - from: bravo
            to: alpha
          - from: bravo
            to: charlie
            filter:
              collections: [indicators]
              max-classification: CONFIDENTIAL
          - from: charlie
            to: bravo
            filter:
              max-classification: SECRET
        """
}

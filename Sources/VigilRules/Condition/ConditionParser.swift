/// A parsed condition, before fields, macros and lists are resolved. Ranges are byte offsets
/// into the text the expression was parsed from.
indirect enum ConditionExpression: Sendable {
    case and([ConditionExpression], range: Range<Int>)
    case or([ConditionExpression], range: Range<Int>)
    case not(ConditionExpression, range: Range<Int>)
    /// A bare identifier in expression position: a macro's name.
    case macro(name: String, range: Range<Int>)
    case check(ConditionCheck)

    /// The bytes of the text this expression covers.
    var range: Range<Int> {
        switch self {
        case .and(_, let range), .or(_, let range), .not(_, let range), .macro(_, let range): range
        case .check(let check): check.range
        }
    }

    /// The same expression with its range widened (an OR written in parentheses).
    func widened(to range: Range<Int>) -> ConditionExpression {
        if case .or(let children, _) = self { return .or(children, range: range) }
        return self
    }
}

/// A literal value as written: quoted or bare.
struct ConditionLiteral: Sendable {
    var bytes: [UInt8]
    var range: Range<Int>
    /// Unquoted: may name a list inside a list literal.
    var isBare: Bool
}

/// The left side of a comparison: a field with its optional bracket argument, inside any
/// number of transformers.
struct ConditionOperand: Sendable {
    var field: String
    var fieldRange: Range<Int>
    /// The bracket argument's text, nil when none was written.
    var argument: String?
    /// The range of `[...]` including the brackets.
    var argumentRange: Range<Int>?
    /// Transformers, innermost first (applied in this order), each with the range of its name.
    var transformers: [(FieldTransformer, Range<Int>)]
    var range: Range<Int>
}

/// What a comparison compares with.
enum ConditionRightHandSide: Sendable {
    /// `exists`.
    case none
    /// One value.
    case value(ConditionLiteral)
    /// `(a, b, ...)`; the range covers the parentheses.
    case list([ConditionLiteral], range: Range<Int>)
    /// `in name` without parentheses: a list's name.
    case listName(String, range: Range<Int>)
}

/// One comparison: `operand op right-hand-side`.
struct ConditionCheck: Sendable {
    var operand: ConditionOperand
    var op: ComparisonOperator
    var opRange: Range<Int>
    var rhs: ConditionRightHandSide
    var range: Range<Int>
}

/// Parses condition text into a `ConditionExpression` with Falco's grammar and precedence
/// (`not` binds tighter than `and`, `and` tighter than `or`):
///
///     or    := and ('or' and)*
///     and   := not ('and' not)*
///     not   := 'not' not | primary
///     primary := '(' or ')' | operand operator [value | list] | macro-name
///     operand := transformer '(' operand ')' | field ['[' argument ']']
struct ConditionParser {
    private var lexer: ConditionLexer
    private var source: ConditionSource { lexer.source }
    private var depth = 0
    /// Deeper nesting is refused rather than risking the stack.
    static let maximumDepth = 200

    /// Parses `source` completely.
    static func parse(_ source: ConditionSource) throws(RuleError) -> ConditionExpression {
        var parser = ConditionParser(lexer: ConditionLexer(source))
        return try parser.parseCondition()
    }

    private init(lexer: ConditionLexer) { self.lexer = lexer }

    private mutating func parseCondition() throws(RuleError) -> ConditionExpression {
        lexer.skipBlanks()
        if lexer.isAtEnd { throw source.error("empty condition", at: lexer.offset) }
        let expression = try parseOr()
        lexer.skipBlanks()
        if !lexer.isAtEnd {
            if lexer.current == UInt8(ascii: ")") {
                throw source.error("unbalanced parentheses: ')' without a matching '('", at: lexer.offset)
            }
            throw source.error("unexpected \(lexer.describeNext()), expected 'and', 'or' or the end of the condition", at: lexer.offset)
        }
        return expression
    }

    private mutating func enter() throws(RuleError) {
        depth += 1
        if depth > Self.maximumDepth {
            throw source.error("condition nested too deeply (more than \(Self.maximumDepth) levels)", at: lexer.offset)
        }
    }

    private mutating func parseOr() throws(RuleError) -> ConditionExpression {
        try enter()
        defer { depth -= 1 }
        var children = [try parseAnd()]
        while true {
            lexer.skipBlanks()
            guard lexer.atKeyword("or") else { break }
            _ = lexer.readWord()
            children.append(try parseAnd())
        }
        guard children.count > 1, let first = children.first, let last = children.last else { return children[0] }
        return .or(children, range: first.range.lowerBound..<last.range.upperBound)
    }

    private mutating func parseAnd() throws(RuleError) -> ConditionExpression {
        try enter()
        defer { depth -= 1 }
        var children = [try parseNot()]
        while true {
            lexer.skipBlanks()
            guard lexer.atKeyword("and") else { break }
            _ = lexer.readWord()
            children.append(try parseNot())
        }
        guard children.count > 1, let first = children.first, let last = children.last else { return children[0] }
        return .and(children, range: first.range.lowerBound..<last.range.upperBound)
    }

    private mutating func parseNot() throws(RuleError) -> ConditionExpression {
        try enter()
        defer { depth -= 1 }
        lexer.skipBlanks()
        if lexer.atKeyword("not"), let word = lexer.readWord() {
            let child = try parseNot()
            return .not(child, range: word.range.lowerBound..<child.range.upperBound)
        }
        return try parsePrimary()
    }

    private static let expectedPrimary = "expected a field, a macro, 'not' or '('"

    private mutating func parsePrimary() throws(RuleError) -> ConditionExpression {
        lexer.skipBlanks()
        guard let next = lexer.current else {
            throw source.error("unexpected end of condition, \(Self.expectedPrimary)", at: lexer.offset)
        }
        if next == UInt8(ascii: "(") {
            let open = lexer.offset
            _ = lexer.consume(next)
            lexer.skipBlanks()
            if lexer.current == UInt8(ascii: ")") {
                throw source.error("empty parentheses, \(Self.expectedPrimary)", at: lexer.offset)
            }
            let inner = try parseOr()
            lexer.skipBlanks()
            guard lexer.consume(UInt8(ascii: ")")) else {
                if lexer.isAtEnd { throw source.error("unbalanced parentheses: '(' is never closed", at: open) }
                throw source.error("unexpected \(lexer.describeNext()), expected 'and', 'or' or ')'", at: lexer.offset)
            }
            return inner.widened(to: open..<lexer.offset)
        }
        guard let word = lexer.peekWord() else {
            throw source.error("unexpected \(lexer.describeNext()), \(Self.expectedPrimary)", at: lexer.offset)
        }
        if word.text == "and" || word.text == "or" {
            throw source.error("unexpected '\(word.text)', \(Self.expectedPrimary)", at: lexer.offset)
        }
        let isField = word.text.contains(".") || isCall(word) || isFollowedByOperator(word)
        guard isField else {
            _ = lexer.readWord()
            return .macro(name: word.text, range: word.range)
        }
        let operand = try parseOperand()
        return .check(try parseComparison(operand))
    }

    /// Whether `word` is immediately followed by `(` (a transformer call).
    private func isCall(_ word: (text: String, range: Range<Int>)) -> Bool {
        word.range.upperBound < source.bytes.count && source.bytes[word.range.upperBound] == UInt8(ascii: "(")
    }

    /// Whether an operator follows `word`: then a bare identifier is a (misspelt) field rather
    /// than a macro, and the error names the field.
    private func isFollowedByOperator(_ word: (text: String, range: Range<Int>)) -> Bool {
        var probe = lexer
        _ = probe.readWord()
        let blank = probe.skipBlanks()
        guard probe.atOperator() else { return false }
        // `macro in` cannot be a macro reference; `a=` either. A word operator needs a blank before it.
        if probe.peekWord() != nil { return blank }
        return true
    }

    private mutating func parseOperand() throws(RuleError) -> ConditionOperand {
        try enter()
        defer { depth -= 1 }
        lexer.skipBlanks()
        guard let word = lexer.readWord() else {
            throw source.error("unexpected \(lexer.describeNext()), expected a field", at: lexer.offset)
        }
        if lexer.current == UInt8(ascii: "("), !word.text.contains(".") {
            guard let transformer = FieldTransformer(rawValue: word.text) else {
                throw source.error("unknown transformer '\(word.text)'; Vigil supports tolower, toupper and basename", at: word.range.lowerBound)
            }
            _ = lexer.consume(UInt8(ascii: "("))
            var inner = try parseOperand()
            lexer.skipBlanks()
            guard lexer.consume(UInt8(ascii: ")")) else {
                if lexer.isAtEnd { throw source.error("unbalanced parentheses: '\(word.text)(' is never closed", at: word.range.upperBound) }
                throw source.error("unexpected \(lexer.describeNext()), expected ')' closing \(word.text)(", at: lexer.offset)
            }
            inner.transformers.append((transformer, word.range))
            inner.range = word.range.lowerBound..<lexer.offset
            return inner
        }
        var operand = ConditionOperand(field: word.text, fieldRange: word.range, argument: nil, argumentRange: nil,
                              transformers: [], range: word.range)
        if lexer.current == UInt8(ascii: "[") {
            let open = lexer.offset
            _ = lexer.consume(UInt8(ascii: "["))
            guard let argument = try lexer.readFieldArgument() else {
                throw source.error("expected an argument in brackets after '\(word.text)['", at: lexer.offset)
            }
            guard lexer.consume(UInt8(ascii: "]")) else {
                throw source.error("expected ']' after the argument of \(word.text)", at: lexer.offset)
            }
            operand.argument = String(decoding: argument.bytes, as: UTF8.self)
            operand.argumentRange = open..<lexer.offset
            operand.range = word.range.lowerBound..<lexer.offset
        }
        return operand
    }

    private mutating func parseComparison(_ operand: ConditionOperand) throws(RuleError) -> ConditionCheck {
        lexer.skipBlanks()
        let fieldText = source.text(operand.range)
        let op: ComparisonOperator
        let opRange: Range<Int>
        if let symbolic = lexer.readSymbolicOperator() {
            (op, opRange) = symbolic
        } else if let word = lexer.peekWord() {
            if let reason = ComparisonOperator.unsupportedWords[word.text] {
                throw source.error(reason, at: word.range.lowerBound)
            }
            guard let wordOperator = ComparisonOperator.words[word.text] else {
                throw source.error("unexpected '\(word.text)', expected an operator after \(fieldText) (=, !=, <, <=, >, >=, in, intersects, pmatch, contains, icontains, startswith, endswith, glob, iglob, regex, exists)", at: word.range.lowerBound)
            }
            _ = lexer.readWord()
            (op, opRange) = (wordOperator, word.range)
        } else if lexer.isAtEnd {
            throw source.error("unexpected end of condition, expected an operator after \(fieldText)", at: lexer.offset)
        } else {
            throw source.error("unexpected \(lexer.describeNext()), expected an operator after \(fieldText)", at: lexer.offset)
        }
        let opText = source.text(opRange)
        let rhs: ConditionRightHandSide
        if op.isUnary {
            rhs = .none
        } else if op.takesList {
            rhs = try parseList(after: opText)
        } else {
            lexer.skipBlanks()
            guard let value = try parseValue() else {
                if lexer.isAtEnd { throw source.error("unexpected end of condition, expected a value after '\(opText)'", at: lexer.offset) }
                throw source.error("unexpected \(lexer.describeNext()), expected a value after '\(opText)'", at: lexer.offset)
            }
            rhs = .value(value)
        }
        let end: Int = switch rhs {
        case .none: opRange.upperBound
        case .value(let literal): literal.range.upperBound
        case .list(_, let range), .listName(_, let range): range.upperBound
        }
        return ConditionCheck(operand: operand, op: op, opRange: opRange, rhs: rhs, range: operand.range.lowerBound..<end)
    }

    private mutating func parseValue() throws(RuleError) -> ConditionLiteral? {
        if let quoted = try lexer.readQuoted() { return ConditionLiteral(bytes: quoted.bytes, range: quoted.range, isBare: false) }
        if let bare = lexer.readBare() { return ConditionLiteral(bytes: bare.bytes, range: bare.range, isBare: true) }
        return nil
    }

    private mutating func parseList(after opText: String) throws(RuleError) -> ConditionRightHandSide {
        lexer.skipBlanks()
        let open = lexer.offset
        guard lexer.consume(UInt8(ascii: "(")) else {
            if let name = lexer.readWord(), !name.text.contains(".") { return .listName(name.text, range: name.range) }
            if lexer.isAtEnd { throw source.error("unexpected end of condition, expected a list after '\(opText)'", at: lexer.offset) }
            throw source.error("unexpected \(lexer.describeNext()), expected a list in parentheses or a list's name after '\(opText)'", at: open)
        }
        lexer.skipBlanks()
        if lexer.current == UInt8(ascii: ")") { throw source.error("empty list after '\(opText)'", at: open) }
        var items: [ConditionLiteral] = []
        while true {
            lexer.skipBlanks()
            guard let item = try parseValue() else {
                if lexer.isAtEnd { throw source.error("unbalanced parentheses: '(' is never closed", at: open) }
                throw source.error("unexpected \(lexer.describeNext()), expected a value in the list", at: lexer.offset)
            }
            items.append(item)
            lexer.skipBlanks()
            if lexer.consume(UInt8(ascii: ",")) { continue }
            if lexer.consume(UInt8(ascii: ")")) { break }
            if lexer.isAtEnd { throw source.error("unbalanced parentheses: '(' is never closed", at: open) }
            throw source.error("unexpected \(lexer.describeNext()), expected ',' or ')' in the list", at: lexer.offset)
        }
        return .list(items, range: open..<lexer.offset)
    }
}

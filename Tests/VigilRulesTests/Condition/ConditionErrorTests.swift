import VigilEvents
@testable import VigilRules
import XCTest

/// Every error, with its exact FILE:LINE:COL. The condition starts at rules.yaml:10:14, so a
/// problem at byte k of the first line is at column 14 + k.
final class ConditionErrorTests: XCTestCase {
    func testPositionsAcrossLines() {
        // Second line: the column counts from the newline.
        assertError("spawned_process and\n  proc.nme = bash", "rules.yaml:11:3: unknown field 'proc.nme'; did you mean 'proc.name'?")
        assertError("spawned_process and\n\n    fd.nme = x", "rules.yaml:12:5: unknown field 'fd.nme'; did you mean 'fd.name'?")
        // Columns count characters (Unicode scalars), not bytes.
        assertError("proc.name = 'é' and proc.pid = x", "rules.yaml:10:45: proc.pid is a number (uint), 'x' is not")
        assertError("proc.name2 = bash", "other.yaml:3:1: unknown field 'proc.name2'; did you mean 'proc.name'?",
                    at: SourceLocation(file: "other.yaml", line: 3, column: 1))
    }

    func testUnknownFields() {
        assertError("proc.nme = bash", "rules.yaml:10:14: unknown field 'proc.nme'; did you mean 'proc.name'?")
        assertError("spawned_process and fd.nam = /etc", "rules.yaml:10:34: unknown field 'fd.nam'; did you mean 'fd.name'?")
        assertError("zzzz.qqqqqqq = 1", "rules.yaml:10:14: unknown field 'zzzz.qqqqqqq'")
        // A bare word followed by an operator is a field, not a macro.
        assertError("procname = bash", "rules.yaml:10:14: unknown field 'procname'; did you mean 'proc.name'?")
        assertError("tolower(proc.nmae) = x", "rules.yaml:10:22: unknown field 'proc.nmae'; did you mean 'proc.name'?")
    }

    func testUndefinedMacrosAndLists() {
        assertError("spawned_process and shel_procs", "rules.yaml:10:34: undefined macro 'shel_procs'; did you mean 'shell_procs'?")
        assertError("qqqqqqqqqq", "rules.yaml:10:14: undefined macro 'qqqqqqqqqq'")
        assertError("shell_binaries", "rules.yaml:10:14: 'shell_binaries' is a list, not a macro; use it after in, intersects or pmatch")
        assertError("proc.name in shel_binaries", "rules.yaml:10:27: undefined list 'shel_binaries'; did you mean 'shell_binaries'?")
    }

    func testTypeMismatches() {
        assertError("proc.pid = abc", "rules.yaml:10:25: proc.pid is a number (uint), 'abc' is not")
        assertError("proc.pid = -1", "rules.yaml:10:25: proc.pid is a number (uint), '-1' is not")
        assertError("proc.pid in (1, x)", "rules.yaml:10:30: proc.pid is a number (uint), 'x' is not")
        assertError("proc.pid in (shell_binaries)", "rules.yaml:10:27: proc.pid is a number (uint), 'sh' is not (an item of list 'shell_binaries')")
        assertError("fd.num = x1", "rules.yaml:10:23: fd.num is a number (int), 'x1' is not")
        assertError("evt.is_thread = yes", "rules.yaml:10:30: evt.is_thread is a boolean, 'yes' is not (use true or false)")
        assertError("proc.aname[1] = x and proc.apid[2] = y", "rules.yaml:10:51: proc.apid[2] is a number (uint), 'y' is not")
    }

    func testOperatorsThatDoNotApply() {
        assertError("proc.pid contains 1", "rules.yaml:10:23: 'contains' applies to strings, and proc.pid is a number (uint)")
        assertError("proc.pid glob 1*", "rules.yaml:10:23: 'glob' applies to strings, and proc.pid is a number (uint)")
        assertError("fd.num pmatch (1)", "rules.yaml:10:21: 'pmatch' applies to strings, and fd.num is a number (int)")
        assertError("evt.is_thread < 1", "rules.yaml:10:28: '<' applies to numbers and strings, and evt.is_thread is a boolean")
        assertError("evt.is_thread startswith t", "rules.yaml:10:28: 'startswith' applies to strings, and evt.is_thread is a boolean")
        assertError("proc.argv = x", "rules.yaml:10:24: '=' does not apply to the list field proc.argv; use in, intersects, contains or exists")
        assertError("proc.anames pmatch (/x)", "rules.yaml:10:26: 'pmatch' does not apply to the list field proc.anames; use in, intersects, contains or exists")
        assertError("tolower(proc.pid) = 1", "rules.yaml:10:14: tolower() applies to strings, and proc.pid is a number (uint)")
        assertError("proc.name bcontains 41", "rules.yaml:10:24: operator 'bcontains' (hex bytes) is not supported; use contains with \\xHH escapes")
    }

    func testFieldArguments() {
        assertError("proc.name[1] = x", "rules.yaml:10:23: proc.name takes no argument in brackets")
        assertError("container.label = x", "rules.yaml:10:29: container.label needs an argument in brackets: container.label[KEY]")
        assertError("proc.aname[x] = y", "rules.yaml:10:25: proc.aname takes an ancestor number in brackets (0 the process, 1 its parent, ...), 'x' is not one")
        assertError("proc.aname[] = y", "rules.yaml:10:25: expected an argument in brackets after 'proc.aname['")
        assertError("proc.aname[1 = y", "rules.yaml:10:26: expected ']' after the argument of proc.aname")
    }

    func testBadRegex() {
        assertError("fd.name regex 'a(b'", "rules.yaml:10:28: invalid regular expression 'a(b': expected ')'")
        assertError("fd.name regex '[z-a]'", "rules.yaml:10:28: invalid regular expression '[z-a]': character 'z' must compare less than or equal to 'a'")
    }

    func testParentheses() {
        assertError("(proc.name = bash", "rules.yaml:10:14: unbalanced parentheses: '(' is never closed")
        assertError("proc.pid = 1 and ((proc.name = bash)", "rules.yaml:10:31: unbalanced parentheses: '(' is never closed")
        assertError("proc.name = bash)", "rules.yaml:10:30: unbalanced parentheses: ')' without a matching '('")
        assertError("proc.name in (a, b", "rules.yaml:10:27: unbalanced parentheses: '(' is never closed")
        assertError("tolower(proc.name = x", "rules.yaml:10:32: unexpected '=', expected ')' closing tolower(")
        assertError("()", "rules.yaml:10:15: empty parentheses, expected a field, a macro, 'not' or '('")
    }

    func testUnexpectedTokensAndEnd() {
        assertError("proc.name = bash sh", "rules.yaml:10:31: unexpected 'sh', expected 'and', 'or' or the end of the condition")
        assertError("proc.name =", "rules.yaml:10:25: unexpected end of condition, expected a value after '='")
        assertError("proc.name = bash and", "rules.yaml:10:34: unexpected end of condition, expected a field, a macro, 'not' or '('")
        assertError("proc.name", "rules.yaml:10:23: unexpected end of condition, expected an operator after proc.name")
        assertError("and proc.name = x", "rules.yaml:10:14: unexpected 'and', expected a field, a macro, 'not' or '('")
        assertError("not", "rules.yaml:10:17: unexpected end of condition, expected a field, a macro, 'not' or '('")
        assertError("proc.name = (x)", "rules.yaml:10:26: unexpected '(', expected a value after '='")
        assertError("proc.name in (a b)", "rules.yaml:10:30: unexpected 'b', expected ',' or ')' in the list")
        assertError("proc.name in (a,)", "rules.yaml:10:30: unexpected ')', expected a value in the list")
        assertError("proc.name in 'x'", "rules.yaml:10:27: unexpected string 'x', expected a list in parentheses or a list's name after 'in'")
        assertError("proc.name is bash",
                    "rules.yaml:10:24: unexpected 'is', expected an operator after proc.name (=, !=, <, <=, >, >=, in, intersects, pmatch, contains, icontains, startswith, endswith, glob, iglob, regex, exists)")
        assertError("b64(proc.name) = x", "rules.yaml:10:14: unknown transformer 'b64'; Vigil supports tolower, toupper and basename")
        assertError("", "rules.yaml:10:14: empty condition")
        assertError("  \n ", "rules.yaml:11:2: empty condition")
    }

    func testStrings() {
        assertError("proc.name = \"bash", "rules.yaml:10:26: unterminated string: missing closing \"")
        assertError(#"proc.name = "a\qb""#, #"rules.yaml:10:28: unsupported escape sequence \q"#)
        assertError(#"proc.name = 'a\"b'"#, #"rules.yaml:10:28: invalid escape \" in a single-quoted string"#)
        assertError(#"proc.name = "\x4""#, #"rules.yaml:10:27: invalid escape: \x needs two hexadecimal digits"#)
        assertError(#"proc.name = "\x00""#, #"rules.yaml:10:27: \x00 (NUL) is not allowed in a string"#)
    }

    func testEmptyList() {
        assertError("proc.name in ()", "rules.yaml:10:27: empty list after 'in'")
        assertError("fd.name pmatch ( )", "rules.yaml:10:29: empty list after 'pmatch'")
    }

    func testMacroRecursion() {
        let context = ConditionContext(macros: [
            "a": ("b and proc.name = x", SourceLocation(file: "m.yaml", line: 1, column: 10)),
            "b": ("proc.pid = 1 or a", SourceLocation(file: "m.yaml", line: 3, column: 10)),
            "c": ("c", SourceLocation(file: "m.yaml", line: 5, column: 10)),
            "d": ("not (d)", SourceLocation(file: "m.yaml", line: 7, column: 10)),
        ])
        assertError("a", "m.yaml:3:26: macro 'a' refers to itself (a -> b -> a)", context: context)
        assertError("proc.pid = 2 or b", "m.yaml:1:10: macro 'b' refers to itself (b -> a -> b)", context: context)
        assertError("c", "m.yaml:5:10: macro 'c' refers to itself (c -> c)", context: context)
        assertError("d", "m.yaml:7:15: macro 'd' refers to itself (d -> d)", context: context)
    }

    func testErrorsInsideMacrosPointIntoTheMacro() {
        let context = ConditionContext(macros: [
            "bad_field": ("proc.name = x and\n  proc.nmae = y", SourceLocation(file: "macros.yaml", line: 20, column: 14)),
            "bad_syntax": ("(proc.name = x", SourceLocation(file: "macros.yaml", line: 30, column: 14)),
            "uses_bad": ("proc.pid = 1 and bad_field", SourceLocation(file: "macros.yaml", line: 40, column: 14)),
        ])
        assertError("bad_field", "macros.yaml:21:3: unknown field 'proc.nmae'; did you mean 'proc.name'?", context: context)
        assertError("uses_bad", "macros.yaml:21:3: unknown field 'proc.nmae'; did you mean 'proc.name'?", context: context)
        assertError("proc.pid = 1 and bad_syntax", "macros.yaml:30:14: unbalanced parentheses: '(' is never closed", context: context)
        // The failed parse is remembered and reported again.
        assertError("bad_syntax", "macros.yaml:30:14: unbalanced parentheses: '(' is never closed", context: context)
    }

    func testUndecidableEventNumber() {
        assertError("proc.name = x and evt.num > 5",
                    "rules.yaml:10:32: evt.num (the event number) is not available in Vigil; only comparisons true for every event or for none, such as Falco's never_true (evt.num=0), are accepted")
    }

    func testNestingLimit() {
        let deep = String(repeating: "(", count: 300) + "proc.name = x" + String(repeating: ")", count: 300)
        do {
            _ = try ConditionCompiler.compile(deep, at: Sample.location, context: Sample.context)
            XCTFail("expected an error")
        } catch {
            XCTAssertTrue(error.message.hasPrefix("condition nested too deeply"), error.description)
        }
    }

    func testDescriptionFormat() {
        let error = RuleError(location: SourceLocation(file: "/etc/vigil/rules.d/a.yaml", line: 7, column: 3), message: "boom")
        XCTAssertEqual(error.description, "/etc/vigil/rules.d/a.yaml:7:3: boom")
        XCTAssertEqual(error.location.description, "/etc/vigil/rules.d/a.yaml:7:3")
    }
}

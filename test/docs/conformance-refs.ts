// The references from docs/CONFORMANCE.md to tests, and the check that each names a test that
// exists: the file, and the path of describe/it/test titles as written in it (read from the
// file's syntax tree with the TypeScript compiler API, never by running it).
//
// A reference is an inline code span holding a repository-relative path ending in `.test.ts`,
// followed by zero or more titles, each ` › "title"`. In a title a backslash takes the next
// character as is (as Markdown does), so `\"`, `\\` and `\|` stand for `"`, `\` and `|`.
// Every title is a direct child of the one before it, the first at the file's top level; the last
// may be a describe (the reference names every test in it) or a test. A title is named as written
// in the source: a string's value; a template literal's text between its backticks, `${…}`
// substitutions as written; an `.each` title with its `%s` or `$name` placeholders. A title
// computed otherwise (a variable, a call) cannot be named: the reference names its describe.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";

/** The separator between a reference's parts (U+203A, single right-pointing angle quotation mark). */
export const SEPARATOR = "›";

export interface Reference {
  /** The 1-based line of CONFORMANCE.md the reference starts on. */
  line: number;
  /** Repository-relative path of the test file. */
  file: string;
  /** The titles from the top level down; empty when the reference names the whole file. */
  titles: string[];
}

export interface ParseProblem {
  line: number;
  message: string;
}

export interface ParsedReferences {
  references: Reference[];
  /** Text that looks like a reference but is not one in the format. */
  problems: ParseProblem[];
}

/** A reference as written in the format, for test titles and messages. */
export function formatReference(ref: Pick<Reference, "file" | "titles">): string {
  const titles = ref.titles.map((t) => ` ${SEPARATOR} "${t.replace(/[\\"|]/g, (c) => `\\${c}`)}"`);
  return `\`${ref.file}\`${titles.join("")}`;
}

const REFERENCE = /`([\w./@-]+\.test\.ts)`((?:\s*›\s*"(?:[^"\\\n]|\\.)*")*)/g;
const TITLE = /"((?:[^"\\\n]|\\.)*)"/g;

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Every reference in a Markdown text, and anything that looks like one but breaks the format. */
export function parseReferences(markdown: string): ParsedReferences {
  const references: Reference[] = [];
  const problems: ParseProblem[] = [];
  // What is left once the references are blanked out (same length, so offsets keep their lines).
  let rest = markdown;
  for (const m of markdown.matchAll(REFERENCE)) {
    const file = m[1] ?? "";
    const titles = [...(m[2] ?? "").matchAll(TITLE)].map((t) => (t[1] ?? "").replace(/\\(.)/g, "$1"));
    references.push({ line: lineAt(markdown, m.index), file, titles });
    rest = rest.slice(0, m.index) + " ".repeat(m[0].length) + rest.slice(m.index + m[0].length);
  }
  // Code spans other than references may hold the format's characters (to describe it), not a file.
  const prose = rest.replace(/`[^`\n]*`/g, (span) => " ".repeat(span.length));
  const strays: [string, RegExp, string][] = [
    [rest, /[\w-]\.test\.ts/g, "a test file named outside the reference format"],
    [prose, /›/g, "a separator that is not part of a reference (is its title quoted?)"],
    [prose, /…/g, "an ellipsis: references are written out in full"],
    [prose, / > /g, "' > ' outside a reference: references separate titles with ›"],
  ];
  for (const [text, pattern, message] of strays) {
    for (const m of text.matchAll(pattern)) problems.push({ line: lineAt(markdown, m.index), message });
  }
  problems.sort((a, b) => a.line - b.line);
  return { references, problems };
}

export interface TestBlock {
  kind: "describe" | "test";
  /** The title as a reference names it; undefined when it is computed. */
  title: string | undefined;
  /** The title's source text, for messages. */
  written: string;
  /** `.skip` or `.todo`: a test that never runs covers nothing. */
  skipped: boolean;
  line: number;
  children: TestBlock[];
}

export interface TestFileTitles {
  blocks: TestBlock[];
  /** Definitions inside a helper function: their nesting depends on where it is called. */
  unplaced: TestBlock[];
}

const DEFINERS = new Map<string, "describe" | "test">([
  ["describe", "describe"],
  ["suite", "describe"],
  ["it", "test"],
  ["test", "test"],
]);
// Modifiers that return a function still waiting for the title: `it.each(table)("title", fn)`.
const CURRIED = new Set(["each", "for", "skipIf", "runIf"]);
const SKIPPING = new Set(["skip", "todo"]);

interface Callee {
  kind: "describe" | "test";
  modifiers: string[];
  /** The callee still needs its table or condition before it takes a title. */
  curried: boolean;
}

function classify(expr: ts.Expression): Callee | undefined {
  if (ts.isIdentifier(expr)) {
    const kind = DEFINERS.get(expr.text);
    return kind === undefined ? undefined : { kind, modifiers: [], curried: false };
  }
  if (ts.isPropertyAccessExpression(expr)) {
    const inner = classify(expr.expression);
    if (inner === undefined || inner.curried) return undefined;
    const name = expr.name.text;
    return { kind: inner.kind, modifiers: [...inner.modifiers, name], curried: CURRIED.has(name) };
  }
  if (ts.isCallExpression(expr)) {
    const inner = classify(expr.expression);
    if (inner === undefined || !inner.curried) return undefined;
    return { ...inner, curried: false };
  }
  return undefined;
}

/** A title as a reference names it, or undefined when it is computed. */
function titleOf(arg: ts.Expression | undefined, file: ts.SourceFile): string | undefined {
  if (arg === undefined) return undefined;
  if (ts.isStringLiteral(arg) || ts.isNoSubstitutionTemplateLiteral(arg)) return arg.text;
  if (ts.isTemplateExpression(arg)) return arg.getText(file).slice(1, -1);
  if (ts.isParenthesizedExpression(arg)) return titleOf(arg.expression, file);
  if (ts.isBinaryExpression(arg) && arg.operatorToken.kind === ts.SyntaxKind.PlusToken) {
    const left = titleOf(arg.left, file);
    const right = titleOf(arg.right, file);
    // Only literals joined by + fold into one title.
    const literal = (e: ts.Expression): boolean =>
      ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e) || ts.isBinaryExpression(e);
    if (left !== undefined && right !== undefined && literal(arg.left) && literal(arg.right))
      return left + right;
  }
  return undefined;
}

function isInlineFunction(node: ts.Node): node is ts.ArrowFunction | ts.FunctionExpression {
  return ts.isArrowFunction(node) || ts.isFunctionExpression(node);
}

/** The describe/it/test blocks of a test file's source, nested as in the source. */
export function collectTitles(source: string, fileName = "test.ts"): TestFileTitles {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const blocks: TestBlock[] = [];
  const unplaced: TestBlock[] = [];

  const visit = (node: ts.Node, parent: TestBlock[], placed: boolean): void => {
    if (ts.isCallExpression(node)) {
      const callee = classify(node.expression);
      if (callee !== undefined && !callee.curried) {
        const titleArg = node.arguments[0];
        const block: TestBlock = {
          kind: callee.kind,
          title: titleOf(titleArg, file),
          written: titleArg?.getText(file) ?? "",
          skipped: callee.modifiers.some((m) => SKIPPING.has(m)),
          line: file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1,
          children: [],
        };
        (placed ? parent : unplaced).push(block);
        // The callee itself may hold a table or condition with definitions in it: rare, but unplaced.
        visit(node.expression, parent, false);
        for (const arg of node.arguments.slice(1)) {
          if (block.kind === "describe" && isInlineFunction(arg)) visit(arg.body, block.children, placed);
          else visit(arg, parent, false);
        }
        if (titleArg !== undefined) visit(titleArg, parent, false);
        return;
      }
    }
    if (ts.isFunctionLike(node)) {
      ts.forEachChild(node, (child) => visit(child, parent, false));
      return;
    }
    ts.forEachChild(node, (child) => visit(child, parent, placed));
  };
  ts.forEachChild(file, (child) => visit(child, blocks, true));
  return { blocks, unplaced };
}

export type CheckResult =
  | { ok: true }
  | { ok: false; problem: "missing_file" | "missing_title" | "wrong_nesting" | "skipped"; message: string };

function findPaths(blocks: TestBlock[], titles: string[]): TestBlock[][] {
  const [first, ...rest] = titles;
  if (first === undefined) return [[]];
  const found: TestBlock[][] = [];
  for (const b of blocks) {
    if (b.title !== first) continue;
    if (rest.length > 0 && b.kind !== "describe") continue;
    for (const tail of findPaths(b.children, rest)) found.push([b, ...tail]);
  }
  return found;
}

function allPaths(blocks: TestBlock[], prefix: string[] = []): { path: string[]; block: TestBlock }[] {
  return blocks.flatMap((b) => {
    const path = [...prefix, b.title ?? `<computed ${b.written}>`];
    return [{ path, block: b }, ...allPaths(b.children, path)];
  });
}

/** Checks one reference against the titles of its file. */
export function checkTitles(ref: Pick<Reference, "file" | "titles">, titles: TestFileTitles): CheckResult {
  const shown = formatReference(ref);
  if (ref.titles.length === 0) {
    return titles.blocks.length + titles.unplaced.length > 0
      ? { ok: true }
      : { ok: false, problem: "missing_title", message: `${ref.file} defines no test` };
  }
  const paths = findPaths(titles.blocks, ref.titles);
  if (paths.some((p) => p.every((b) => !b.skipped))) return { ok: true };
  if (paths.length > 0) {
    return { ok: false, problem: "skipped", message: `${shown}: the test is skipped (.skip or .todo)` };
  }
  const last = ref.titles[ref.titles.length - 1];
  const elsewhere = allPaths(titles.blocks).filter((p) => p.block.title === last);
  if (elsewhere.length > 0) {
    const where = elsewhere.map((p) => formatReference({ file: ref.file, titles: p.path })).join("; ");
    return {
      ok: false,
      problem: "wrong_nesting",
      message: `${shown}: no such nesting; the title is at ${where}`,
    };
  }
  const helper = allPaths(titles.unplaced).filter((p) => p.block.title === last);
  if (helper.length > 0) {
    const lines = helper.map((p) => p.block.line).join(", ");
    return {
      ok: false,
      problem: "wrong_nesting",
      message: `${shown}: the title is defined in a helper function (line ${lines}); name the describe it is called in`,
    };
  }
  return { ok: false, problem: "missing_title", message: `${shown}: no test or describe has this title` };
}

// Parsing is the slow part and CONFORMANCE.md names a few files many times: keyed by content.
const parsed = new Map<string, TestFileTitles>();

/** Checks one reference against the repository at `root`. */
export function checkReference(ref: Pick<Reference, "file" | "titles">, root: string): CheckResult {
  const path = join(root, ref.file);
  if (!existsSync(path) || !statSync(path).isFile()) {
    return { ok: false, problem: "missing_file", message: `${ref.file}: no such file` };
  }
  const source = readFileSync(path, "utf8");
  let titles = parsed.get(source);
  if (titles === undefined) parsed.set(source, (titles = collectTitles(source, ref.file)));
  return checkTitles(ref, titles);
}

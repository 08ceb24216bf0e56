import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  checkReference,
  checkTitles,
  collectTitles,
  formatReference,
  parseReferences,
  type TestBlock,
} from "./conformance-refs.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const doc = parseReferences(readFileSync(join(ROOT, "docs/CONFORMANCE.md"), "utf8"));

// One case per reference, titled by the reference, so a failure names the stale one.
describe("docs/CONFORMANCE.md names tests that exist", () => {
  it("writes every reference in the one format", () => {
    expect(doc.references.length).toBeGreaterThan(100);
    expect(doc.problems).toEqual([]);
  });
  for (const ref of doc.references) {
    it(`line ${ref.line}: ${formatReference(ref)}`, () => {
      expect(checkReference(ref, ROOT)).toEqual({ ok: true });
    });
  }
});

describe("parseReferences", () => {
  it("reads the file and the titles of each reference, with its line", () => {
    const md = [
      "# Title",
      '| rule | `a/b.test.ts` › "outer" › "inner"; `c/d.test.ts` |',
      'Also `e/f.test.ts` › "only a describe".',
    ].join("\n");
    expect(parseReferences(md)).toEqual({
      references: [
        { line: 2, file: "a/b.test.ts", titles: ["outer", "inner"] },
        { line: 2, file: "c/d.test.ts", titles: [] },
        { line: 3, file: "e/f.test.ts", titles: ["only a describe"] },
      ],
      problems: [],
    });
  });

  it("takes a backslash as escaping the next character, and allows a line break around a ›", () => {
    const md = 'x `a.test.ts` › "say \\"hi\\" \\| \\\\ ok" ›\n  "next line"';
    expect(parseReferences(md).references).toEqual([
      { line: 1, file: "a.test.ts", titles: ['say "hi" | \\ ok', "next line"] },
    ]);
  });

  it("formats a reference so that it parses back to itself", () => {
    const ref = {
      file: "p/q.test.ts",
      titles: ['a "quoted" title', "a | bar and a \\ backslash", "${x} %s"],
    };
    expect(parseReferences(`see ${formatReference(ref)}.`).references).toEqual([{ line: 1, ...ref }]);
  });

  it("flags what looks like a reference but is not in the format", () => {
    const md = [
      'fine: `a.test.ts` › "t"',
      "a bare name a.test.ts",
      "`b.test.ts` > describe > test",
      "… > another",
      "`c.test.ts` › unquoted",
      "`npx vitest run d.test.ts`",
    ].join("\n");
    expect(parseReferences(md).problems.map((p) => [p.line, p.message])).toEqual([
      [2, "a test file named outside the reference format"],
      [3, "' > ' outside a reference: references separate titles with ›"],
      [3, "' > ' outside a reference: references separate titles with ›"],
      [4, "an ellipsis: references are written out in full"],
      [4, "' > ' outside a reference: references separate titles with ›"],
      [5, "a separator that is not part of a reference (is its title quoted?)"],
      [6, "a test file named outside the reference format"],
    ]);
  });

  it("allows the format's characters inside other code spans, to describe it", () => {
    const md = "Titles follow ` › ` and a template keeps its `${…}`; files end in `.test.ts`; `a > b`.";
    expect(parseReferences(md)).toEqual({ references: [], problems: [] });
  });
});

/** The tree as [kind, title, children] triples, to compare by hand-written expectations. */
type Shape = [string, string, Shape[]];
const shape = (blocks: TestBlock[]): Shape[] =>
  blocks.map((b) => [
    `${b.kind}${b.skipped ? " (skipped)" : ""}`,
    b.title ?? `<computed ${b.written}>`,
    shape(b.children),
  ]);

describe("collectTitles", () => {
  it("nests describe, it and test as in the source, with each kind of title", () => {
    const source = `
      import { describe, expect, it, test } from "vitest";
      const UPDATES = 200;
      describe("outer", () => {
        it('a single-quoted title', () => {});
        describe(\`inner\`, () => {
          test("a test", () => {});
          it(\`driven through \${UPDATES} updates\`, () => {});
        });
        it.each([[1], [2]])("case %s", () => {});
        it("joined " + "by plus", () => {});
        for (const name of ["x", "y"]) it(name, () => {});
      });
      describe.each(["a", "b"])("overlay %s", () => {
        it.skipIf(true)("maybe", () => {});
        it.concurrent("at once", () => {});
      });
      it("top level", () => { expect(/it/.test("it")).toBe(true); });
    `;
    const t = collectTitles(source);
    expect(shape(t.blocks)).toEqual([
      [
        "describe",
        "outer",
        [
          ["test", "a single-quoted title", []],
          [
            "describe",
            "inner",
            [
              ["test", "a test", []],
              ["test", "driven through ${UPDATES} updates", []],
            ],
          ],
          ["test", "case %s", []],
          ["test", "joined by plus", []],
          ["test", "<computed name>", []],
        ],
      ],
      [
        "describe",
        "overlay %s",
        [
          ["test", "maybe", []],
          ["test", "at once", []],
        ],
      ],
      ["test", "top level", []],
    ]);
    expect(t.unplaced).toEqual([]);
  });

  it("marks .skip and .todo as skipped", () => {
    const t = collectTitles(
      `describe.skip("d", () => { it("x", () => {}); }); it.todo("later"); it.only("o", () => {});`,
    );
    expect(shape(t.blocks)).toEqual([
      ["describe (skipped)", "d", [["test", "x", []]]],
      ["test (skipped)", "later", []],
      ["test", "o", []],
    ]);
  });

  it("keeps definitions inside a helper function apart: their nesting depends on the call", () => {
    const t = collectTitles(`
      function cases(kind: string) { it("helper case", () => {}); }
      describe("d", () => { cases("a"); });
      describe("named callback", suite);
      function suite() { it("inside suite", () => {}); }
    `);
    expect(shape(t.blocks)).toEqual([
      ["describe", "d", []],
      ["describe", "named callback", []],
    ]);
    expect(shape(t.unplaced)).toEqual([
      ["test", "helper case", []],
      ["test", "inside suite", []],
    ]);
  });
});

describe("checkTitles", () => {
  const titles = collectTitles(`
    describe("a", () => {
      describe("b", () => { it("leaf", () => {}); });
      it("direct", () => {});
      it.skip("skipped", () => {});
    });
    describe("c", () => { it("leaf", () => {}); });
    function helper() { it("from a helper", () => {}); }
  `);
  const check = (...path: string[]) => checkTitles({ file: "f.test.ts", titles: path }, titles);

  it("accepts a test at its full nesting, a describe, and the whole file", () => {
    expect(check("a", "b", "leaf")).toEqual({ ok: true });
    expect(check("a", "direct")).toEqual({ ok: true });
    expect(check("c", "leaf")).toEqual({ ok: true });
    expect(check("a", "b")).toEqual({ ok: true });
    expect(check()).toEqual({ ok: true });
  });

  it("fails a title the file does not have", () => {
    expect(check("a", "b", "leaf, renamed")).toMatchObject({ ok: false, problem: "missing_title" });
    expect(check("a", "no such describe", "new leaf")).toMatchObject({ ok: false, problem: "missing_title" });
    expect(check("a", "b", "lea")).toMatchObject({ ok: false, problem: "missing_title" });
  });

  it("fails a title at the wrong nesting, naming where it is", () => {
    expect(check("a", "leaf")).toEqual({
      ok: false,
      problem: "wrong_nesting",
      message:
        '`f.test.ts` › "a" › "leaf": no such nesting; the title is at `f.test.ts` › "a" › "b" › "leaf"; `f.test.ts` › "c" › "leaf"',
    });
    expect(check("b", "leaf")).toMatchObject({ ok: false, problem: "wrong_nesting" });
    expect(check("a", "no such describe", "leaf")).toMatchObject({ ok: false, problem: "wrong_nesting" });
    expect(check("direct")).toMatchObject({ ok: false, problem: "wrong_nesting" });
    expect(check("c", "b", "leaf")).toMatchObject({ ok: false, problem: "wrong_nesting" });
    // A test has no children.
    expect(check("a", "direct", "leaf")).toMatchObject({ ok: false, problem: "wrong_nesting" });
  });

  it("fails a skipped test, and a test defined in a helper function", () => {
    expect(check("a", "skipped")).toMatchObject({ ok: false, problem: "skipped" });
    expect(check("from a helper")).toMatchObject({ ok: false, problem: "wrong_nesting" });
  });

  it("fails a whole-file reference to a file without tests", () => {
    expect(
      checkTitles({ file: "f.test.ts", titles: [] }, collectTitles("export const x = 1;")),
    ).toMatchObject({
      ok: false,
      problem: "missing_title",
    });
  });
});

describe("checkReference", () => {
  const root = mkdtempSync(join(tmpdir(), "conformance-refs-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, "pkg/test"), { recursive: true });
  writeFileSync(join(root, "pkg/test/x.test.ts"), `describe("d", () => { it("t", () => {}); });`);

  it("reads the file under the root and checks its titles", () => {
    expect(checkReference({ file: "pkg/test/x.test.ts", titles: ["d", "t"] }, root)).toEqual({ ok: true });
    expect(checkReference({ file: "pkg/test/x.test.ts", titles: ["d", "u"] }, root)).toMatchObject({
      ok: false,
      problem: "missing_title",
    });
  });

  it("fails a file that does not exist, or is a directory", () => {
    expect(checkReference({ file: "pkg/test/y.test.ts", titles: ["d", "t"] }, root)).toEqual({
      ok: false,
      problem: "missing_file",
      message: "pkg/test/y.test.ts: no such file",
    });
    mkdirSync(join(root, "pkg/test/dir.test.ts"));
    expect(checkReference({ file: "pkg/test/dir.test.ts", titles: [] }, root)).toMatchObject({
      ok: false,
      problem: "missing_file",
    });
  });
});

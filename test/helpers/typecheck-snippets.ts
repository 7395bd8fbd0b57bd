import path from 'node:path';
import ts from 'typescript';

/**
 * Type-checks a few small TypeScript files that exist only in memory, placed in `directory` so
 * that their relative imports resolve as they would there. Only those files and what they
 * import are read (no project, no @types), so this takes a second or two, not the whole repo's
 * type check.
 */
export class SnippetProgram {
  private readonly program: ts.Program;

  constructor(
    private readonly directory: string,
    snippets: Record<string, string>,
  ) {
    const options: ts.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      // The client's types name fetch's Request and Response.
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      types: [],
      strict: true,
      noEmit: true,
      skipLibCheck: true,
    };
    const files = new Map(
      Object.entries(snippets).map(([name, text]) => [path.join(directory, name), text]),
    );
    const disk = ts.createCompilerHost(options, true);
    const host: ts.CompilerHost = {
      ...disk,
      getSourceFile: (fileName, languageVersion, ...rest) => {
        const text = files.get(fileName);
        return text === undefined
          ? disk.getSourceFile(fileName, languageVersion, ...rest)
          : ts.createSourceFile(fileName, text, languageVersion, true);
      },
      fileExists: (fileName) => files.has(fileName) || disk.fileExists(fileName),
      readFile: (fileName) => files.get(fileName) ?? disk.readFile(fileName),
    };
    this.program = ts.createProgram([...files.keys()], options, host);
  }

  get checker(): ts.TypeChecker {
    return this.program.getTypeChecker();
  }

  sourceFile(name: string): ts.SourceFile {
    const file = this.program.getSourceFile(path.join(this.directory, name));
    if (file === undefined) throw new Error(`no snippet ${name}`);
    return file;
  }

  /** The syntactic and semantic problems of one snippet (not of the files it imports). */
  diagnostics(name: string): Diagnostic[] {
    const file = this.sourceFile(name);
    return [
      ...this.program.getSyntacticDiagnostics(file),
      ...this.program.getSemanticDiagnostics(file),
    ].map((diagnostic) => ({
      code: diagnostic.code,
      message: ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'),
      line:
        diagnostic.start === undefined
          ? undefined
          : file.getLineAndCharacterOfPosition(diagnostic.start).line + 1,
      text:
        diagnostic.start === undefined || diagnostic.length === undefined
          ? undefined
          : file.text.slice(diagnostic.start, diagnostic.start + diagnostic.length),
    }));
  }
}

export interface Diagnostic {
  code: number;
  message: string;
  /** 1-based line of the snippet. */
  line: number | undefined;
  /** The source text the diagnostic points at. */
  text: string | undefined;
}

// Word-by-word accept. VS Code's stable API tells an extension nothing when the user takes
// part of a suggestion (only the proposed inlineCompletionsAdditions API does, and a released
// extension cannot use it), so the extension binds the same key as VS Code's Accept Next Word
// to its own command, runs VS Code's command from it and works out from the edit what was
// taken. Pure: the controller passes the offered items and the edit.

/** One offered suggestion, as the controller keeps it: document offsets, UTF-16 units. */
export interface OfferedText {
  /** Where the suggestion starts in the document. */
  start: number;
  insertText: string;
}

/** One replacement in the document (a TextDocumentContentChangeEvent in offsets). */
export interface Replacement {
  offset: number;
  length: number;
  text: string;
}

/**
 * Which offered item the edit took part of, and how much of it (UTF-16 units from the start
 * of its insertText, as didPartiallyAcceptCompletion counts): the document after the edit holds
 * the item's text from its start up to the end of the inserted text. Nothing when the edit took
 * all of an item (that is an accept, which the item's command reports) or none.
 */
export function partialAccept(
  items: readonly OfferedText[],
  edit: Replacement,
  textAfter: (start: number, end: number) => string,
): { index: number; acceptedLength: number } | undefined {
  const end = edit.offset + edit.text.length;
  for (const [index, item] of items.entries()) {
    if (item.start > edit.offset || end <= item.start) {
      continue;
    }
    const taken = textAfter(item.start, end);
    if (taken.length > 0 && taken.length < item.insertText.length && item.insertText.startsWith(taken)) {
      return { index, acceptedLength: taken.length };
    }
  }
  return undefined;
}

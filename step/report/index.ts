/** `step report`: the HTML page comparing training runs (see html.ts). */
export * from './load-run.js';
export * from './summarize.js';
export { renderReport, writeReport } from './html.js';

// Prints Redocly's totals from its JSON report and fails on any error or warning (redocly itself exits 0 on warnings).
const totals = require(require("path").resolve(process.argv[2])).totals;
console.log(`redocly: ${totals.errors} errors, ${totals.warnings} warnings`);
process.exit(totals.errors + totals.warnings === 0 ? 0 : 1);

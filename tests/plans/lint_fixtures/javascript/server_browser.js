// near miss: analytics.js in a browser stamps events itself; no server library here
export function view(product) {
  analytics.track("Product Viewed", { sku: product.sku });
}

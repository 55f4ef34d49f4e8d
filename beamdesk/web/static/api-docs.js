// Starts Swagger UI (/api/docs) or ReDoc (/api/redoc) on the page's #api-docs element, with
// the OpenAPI URL from its data- attributes (the CSP allows no inline script).
(() => {
  const root = document.getElementById("api-docs");
  if (!root) return;
  const url = root.dataset.openapiUrl;
  if (root.dataset.kind === "redoc") {
    window.Redoc.init(url, {}, root);
    return;
  }
  const csrf = root.dataset.csrfToken;
  window.SwaggerUIBundle({
    url,
    domNode: root,
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No badge from an online validator: the page must work offline and within the CSP.
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    // "Try it out" with the session cookie: changes need the session's CSRF token.
    requestInterceptor: (request) => {
      const target = new URL(request.url, window.location.href);
      if (csrf && target.origin === window.location.origin) {
        request.headers["X-CSRF-Token"] = csrf;
      }
      return request;
    },
  });
})();
